import type { Connection } from '../connection';

/** [MQTT-3.12.4-1] PINGREQ is answered with PINGRESP (the keep alive clock was reset on arrival). */
export function handlePingreq(conn: Connection): void {
  conn.send({ cmd: 'pingresp' });
  // A quiet subscriber still has its permission (and credential) asked again, once per keep alive at most.
  conn.recheckIdle();
}
