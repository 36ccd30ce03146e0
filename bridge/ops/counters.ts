/**
 * What the MQTT front-end counts while it runs, as plain numbers: a field increment on the packet
 * path, nothing more. The ops server (server.ts) turns them into Prometheus metrics when scraped.
 */

/** Control packet types, as mqtt-packet names them. */
export const PACKET_TYPES = ['connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth'] as const;
export type PacketType = (typeof PACKET_TYPES)[number];

const zeros = (): Record<PacketType, number> => Object.fromEntries(PACKET_TYPES.map((t) => [t, 0])) as Record<PacketType, number>;

function bump(m: Map<number, number>, code: number): void {
  m.set(code, (m.get(code) ?? 0) + 1);
}

export class MqttCounters {
  /** Packets read from clients, by type. */
  readonly received = zeros();
  /** Packets written to clients, by type. */
  readonly sent = zeros();
  /** PUBLISH packets read, by QoS. */
  readonly publishesIn: [number, number, number] = [0, 0, 0];
  /** PUBLISH packets written (deliveries), by QoS. */
  readonly publishesOut: [number, number, number] = [0, 0, 0];
  /**
   * CONNECTs decided, by MQTT 5 reason code: 0x00 accepted, else why refused — the code the bridge
   * decided, whatever the client could be told (3.1.1 has five return codes; some refusals close unanswered).
   */
  readonly connects = new Map<number, number>([[0x00, 0]]);
  /** Publishes refused, by the MQTT 5 reason code the refusal carries (told in PUBACK/PUBREC, or dropped at QoS 0, or — 3.1.1 — the connection closed). */
  readonly publishRefusals = new Map<number, number>();
  /** Connections the bridge ended after their CONNACK, by MQTT 5 reason code (a 3.1.1 client is not told: its socket closes). */
  readonly disconnects = new Map<number, number>();

  read(p: { cmd: string; qos?: number }): void {
    const t = p.cmd as PacketType;
    if (t in this.received) this.received[t]++;
    if (t === 'publish') this.publishesIn[p.qos === 1 || p.qos === 2 ? p.qos : 0]++;
  }

  wrote(p: { cmd: string; qos?: number }): void {
    const t = p.cmd as PacketType;
    if (t in this.sent) this.sent[t]++;
    if (t === 'publish') this.publishesOut[p.qos === 1 || p.qos === 2 ? p.qos : 0]++;
  }

  connect(reasonCode: number): void {
    bump(this.connects, reasonCode);
  }

  refusedPublish(reasonCode: number): void {
    bump(this.publishRefusals, reasonCode);
  }

  disconnected(reasonCode: number): void {
    bump(this.disconnects, reasonCode);
  }
}

