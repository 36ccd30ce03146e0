import type { Connection } from '../connection';

/** [MQTT-3.12.4-1] PINGREQ is answered with PINGRESP (the keep alive clock was reset on arrival). */
export function handlePingreq(conn: Connection): void {
  conn.send({ cmd: 'pingresp' });
}
