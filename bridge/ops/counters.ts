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
  /** CONNACKs written, by reason code in MQTT 5's numbering (a 3.1.1 return code as the v5 code it stands for). */
  readonly connacks = new Map<number, number>();
  /** Publishes refused, by the MQTT 5 reason code the refusal carries (told in PUBACK/PUBREC, or dropped at QoS 0, or — 3.1.1 — the connection closed). */
  readonly publishRefusals = new Map<number, number>();
  /** Connections the bridge ended after their CONNACK, by MQTT 5 reason code (a 3.1.1 client is not told: its socket closes). */
  readonly disconnects = new Map<number, number>();

  read(p: { cmd: string; qos?: number }): void {
    const t = p.cmd as PacketType;
    if (t in this.received) this.received[t]++;
    if (t === 'publish') this.publishesIn[p.qos === 1 || p.qos === 2 ? p.qos : 0]++;
  }

  wrote(p: { cmd: string; qos?: number; reasonCode?: number; returnCode?: number }): void {
    const t = p.cmd as PacketType;
    if (t in this.sent) this.sent[t]++;
    switch (t) {
      case 'publish':
        this.publishesOut[p.qos === 1 || p.qos === 2 ? p.qos : 0]++;
        break;
      case 'connack':
        bump(this.connacks, p.reasonCode ?? V4_AS_V5[p.returnCode ?? 0] ?? 0x80);
        break;
    }
  }

  refusedPublish(reasonCode: number): void {
    bump(this.publishRefusals, reasonCode);
  }

  disconnected(reasonCode: number): void {
    bump(this.disconnects, reasonCode);
  }
}

/** 3.1.1 CONNACK return codes (§3.2.2.3) as the MQTT 5 reason codes they stand for. */
const V4_AS_V5: Record<number, number> = { 0: 0x00, 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87 };
