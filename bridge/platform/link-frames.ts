import { LINK_LIMITS, type BridgeOp, type Mqtt5Fields } from '../../shared/link';
import type { PublishRequest } from './types';

/**
 * What the bridge's link (link.ts) puts in frames: how queued ops are split into frames the channel
 * actor accepts, a publish's MQTT 5 fields, and user properties between mqtt-packet's object form
 * and the link's ordered pairs.
 */

const NO_MQTT5: Mqtt5Fields = Object.freeze({});

/** The MQTT 5 fields of a publish (written on a v4 link only: encodeLinkFrame), without a spread of absent ones. */
export function mqtt5Of(req: PublishRequest): Mqtt5Fields {
  if (req.format === undefined && req.responseTopic === undefined && req.correlation === undefined) return NO_MQTT5;
  const f: Mqtt5Fields = {};
  if (req.format !== undefined) f.format = req.format;
  if (req.responseTopic !== undefined) f.responseTopic = req.responseTopic;
  if (req.correlation !== undefined) f.correlation = req.correlation;
  return f;
}

/** About what a publish adds to a frame: its payload and its strings (UTF-16 length: a lower bound of UTF-8). */
function publishBytes(op: Extract<BridgeOp, { op: 'publish' }>): number {
  let n = op.payload.byteLength + op.subtopic.length + op.publisher.length + op.contentType.length + 16 + (op.responseTopic?.length ?? 0) + (op.correlation?.byteLength ?? 0);
  for (const [k, v] of op.properties ?? []) n += k.length + v.length + 2;
  return n;
}

/** Splits queued ops into frames the actor accepts: bounded in ops, publishes and bytes. */
export function frames(ops: readonly BridgeOp[]): BridgeOp[][] {
  const out: BridgeOp[][] = [];
  let cur: BridgeOp[] = [];
  let publishes = 0;
  let bytes = 0;
  for (const op of ops) {
    const size = op.op === 'publish' ? publishBytes(op) : 0;
    const full = cur.length >= LINK_LIMITS.opsPerFrame || (op.op === 'publish' && (publishes >= LINK_LIMITS.publishesPerFrame || (publishes > 0 && bytes + size > LINK_LIMITS.frameBytes)));
    if (full && cur.length > 0) {
      out.push(cur);
      cur = [];
      publishes = 0;
      bytes = 0;
    }
    cur.push(op);
    if (op.op === 'publish') (publishes++, (bytes += size));
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** MQTT 5 user properties as ordered [name, value] pairs (the wire form, §3.3.2.3.7). */
export function propertyPairs(props: Record<string, string | string[]>): [string, string][] {
  return Object.entries(props).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x): [string, string] => [k, x]));
}

/**
 * Ordered pairs back into mqtt-packet's object form (a repeated name: an array). A null-prototype
 * object: a property named `toString` or `__proto__` is the publisher's, not Object's.
 */
export function groupProperties(pairs: [string, string][]): Record<string, string | string[]> {
  const out = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of pairs) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
