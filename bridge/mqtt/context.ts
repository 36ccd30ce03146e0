import type { MqttCounters } from '../ops/counters';
import type { Platform } from '../platform/types';
import type { Clock } from '../clock';
import type { KeepAliveSweep } from './keepalive';
import type { MqttLimits, TokenBucket } from './limits';
import type { SessionStore } from './session';
import type { SharedSubscriptions } from './shares';
import type { Wills } from './wills';

/** What every connection of one MQTT server shares. */
export interface ServerContext {
  readonly platform: Platform;
  readonly store: SessionStore;
  readonly limits: MqttLimits;
  readonly clock: Clock;
  readonly log: (msg: string) => void;
  /** Open connections per device on this bridge (limit and presence). */
  readonly devices: Map<string, number>;
  /** Session key → id of the local connection holding it. */
  readonly holders: Map<string, number>;
  /** Session key → CONNECTs on this bridge claiming it right now (a claim seen by an ended holder is then not another bridge's). */
  readonly claiming: Map<string, number>;
  /** Publish rate per device. */
  readonly buckets: Map<string, TokenBucket>;
  readonly shares: SharedSubscriptions;
  readonly wills: Wills;
  /** Keep Alive of every open connection, from one timer. */
  readonly keepalive: KeepAliveSweep;
  /** TLS with client certificates: the certificate's CN must equal the MQTT username. */
  readonly certificateMustMatchUsername: boolean;
  /** Packets and outcomes counted for the ops server's metrics (bridge/ops). */
  readonly counters: MqttCounters;
}
