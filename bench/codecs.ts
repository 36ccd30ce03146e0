/**
 * Scenario 7: codec microbenchmarks on one core — SenML JSON/CBOR decode + normalize (records/s),
 * MQTT packet parse/generate (packets/s), bridge-link frame encode/decode (messages/s). Each has a
 * peer in the same run: the raw library call without validation/normalization, so the ratio is
 * what our checking costs.
 */
import { Encoder, decode as cborDecodeRaw } from 'cbor-x';
import mqtt from 'mqtt-packet';
import { decodeLinkFrame, encodeLinkFrame, type LinkOp } from '../shared/link';
import { decodeSenmlCbor, decodeSenmlJson } from '../shared/senml';
import { measure, type Row } from './harness';

function senmlPack(n: number): { json: string; cbor: Uint8Array } {
  const recs: Record<string, unknown>[] = [];
  const t0 = 1_795_000_000;
  for (let i = 0; i < n; i++) {
    const r: Record<string, unknown> = { n: i % 3 === 0 ? 'temperature' : i % 3 === 1 ? 'humidity' : 'pressure', u: i % 3 === 0 ? 'Cel' : i % 3 === 1 ? '%RH' : 'Pa', v: 20 + (i % 17) * 0.5, t: i };
    if (i === 0) Object.assign(r, { bn: 'urn:dev:ow:10e2073a01080063:', bt: t0 });
    recs.push(r);
  }
  const labels: Record<string, number> = { bn: -2, bt: -3, n: 0, u: 1, v: 2, t: 6 };
  const cborRecs = recs.map((r) => new Map(Object.entries(r).map(([k, v]) => [labels[k]!, v])));
  // Plain CBOR maps with integer keys (RFC 8428 §6), no cbor-x extensions.
  // useTag259ForMaps is a cbor-x option its typings do not list.
  const enc = new Encoder({ useRecords: false, useTag259ForMaps: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);
  return { json: JSON.stringify(recs), cbor: enc.encode(cborRecs) };
}

export function codecScenarios(opts: { ms: number; runs: number }): Row[] {
  const rows: Row[] = [];
  const row = (subject: string, unit: string, m: { value: number; runs: number[] }, vs?: string): Row => ({ scenario: '7 codecs (one core)', subject: `${subject} (${unit})`, figures: { 'per second': m.value }, vs, runs: m.runs.length, samples: { 'per second': m.runs } });
  const add = (subject: string, unit: string, fn: () => void, units: number, peer?: { name: string; fn: () => void }) => {
    const m = measure(fn, units, opts);
    let vs: string | undefined;
    if (peer) {
      const p = measure(peer.fn, units, opts);
      rows.push(row(peer.name, unit, p, 'peer'));
      vs = `${(m.value / p.value).toFixed(2)}× ${peer.name}`;
    }
    rows.push(row(subject, unit, m, vs));
  };

  for (const n of [1, 10, 100]) {
    const p = senmlPack(n);
    add(`SenML CBOR decode+normalize, ${n}/pack`, 'records', () => decodeSenmlCbor(p.cbor), n, { name: `cbor-x decode only, ${n}/pack`, fn: () => cborDecodeRaw(p.cbor) });
    add(`SenML JSON decode+normalize, ${n}/pack`, 'records', () => decodeSenmlJson(p.json), n, { name: `JSON.parse only, ${n}/pack`, fn: () => JSON.parse(p.json) });
  }

  const payload = Buffer.from(senmlPack(3).json);
  for (const [protocolVersion, qos] of [[4, 0], [4, 1], [5, 1]] as const) {
    const packet = { cmd: 'publish' as const, topic: 'channels/6c1f0a8e-5f3b-4b43-9a39-0e6c1c1f3f7e/messages/lab/temp', payload, qos, messageId: qos ? 42 : undefined, retain: false, dup: false, ...(protocolVersion === 5 ? { properties: { contentType: 'application/senml+json' } } : {}) };
    const bytes = mqtt.generate(packet, { protocolVersion });
    add(`MQTT v${protocolVersion} PUBLISH qos${qos} generate`, 'packets', () => mqtt.generate(packet, { protocolVersion }), 1);
    const parser = mqtt.parser({ protocolVersion });
    parser.on('error', () => undefined);
    add(`MQTT v${protocolVersion} PUBLISH qos${qos} parse`, 'packets', () => parser.parse(bytes), 1);
  }

  // Ten devices' publishes, as a busy channel's link carries them.
  const batch: LinkOp[] = Array.from({ length: 100 }, (_, i) => ({ op: 'publish', id: i + 1, subtopic: 'lab/temp', publisher: `3f6c1e0a-5f3b-4b43-9a39-0e6c1c1f3f7${i % 10}`, protocol: 'mqtt', contentType: 'application/senml+json', payload, retain: false }));
  const frame = encodeLinkFrame(batch);
  const v2 = encodeLinkFrame(batch, true);
  add('link frame encode (100 publishes), v1', 'messages', () => encodeLinkFrame(batch), 100);
  add('link frame decode+validate (100 publishes), v1', 'messages', () => decodeLinkFrame(frame), 100, { name: 'cbor-x decode only (same frame)', fn: () => cborDecodeRaw(frame) });
  add('link frame encode (100 publishes), v2 string references', 'messages', () => encodeLinkFrame(batch, true), 100, { name: 'v1 encode (same ops)', fn: () => encodeLinkFrame(batch) });
  add('link frame decode+validate (100 publishes), v2 string references', 'messages', () => decodeLinkFrame(v2), 100, { name: 'v1 decode+validate (same ops)', fn: () => decodeLinkFrame(frame) });
  // v3: the same QoS 0 publishes with their QoS, as the bridge now sends them.
  const withQos: LinkOp[] = batch.map((op) => ({ ...op, qos: 0 }) as LinkOp);
  const v3dialect = { refs: true, qos: true };
  const v3 = encodeLinkFrame(withQos, v3dialect);
  add('link frame encode (100 QoS 0 publishes), v3 with publish QoS', 'messages', () => encodeLinkFrame(withQos, v3dialect), 100, { name: 'v2 encode (same ops, no QoS)', fn: () => encodeLinkFrame(batch, true) });
  add('link frame decode+validate (100 QoS 0 publishes), v3 with publish QoS', 'messages', () => decodeLinkFrame(v3), 100, { name: 'v2 decode+validate (no QoS)', fn: () => decodeLinkFrame(v2) });
  // v4: the same publishes, none with MQTT 5 format / Response Topic / Correlation Data (the usual case: nothing written), and
  // as MQTT 5 requests (a Content Type of their own, a Response Topic and 16 bytes of Correlation Data each).
  const v4dialect = { refs: true, qos: true, mqtt5: true };
  const v4 = encodeLinkFrame(withQos, v4dialect);
  add('link frame encode (100 QoS 0 publishes), v4 without MQTT 5 fields', 'messages', () => encodeLinkFrame(withQos, v4dialect), 100, { name: 'v3 encode (same ops)', fn: () => encodeLinkFrame(withQos, v3dialect) });
  add('link frame decode+validate (100 QoS 0 publishes), v4 without MQTT 5 fields', 'messages', () => decodeLinkFrame(v4), 100, { name: 'v3 decode+validate (same ops)', fn: () => decodeLinkFrame(v3) });
  const requests: LinkOp[] = withQos.map((op, i) => ({ ...op, format: 4, responseTopic: `channels/6c1f0a8e-5f3b-4b43-9a39-0e6c1c1f3f7e/messages/replies/${i % 10}`, correlation: new Uint8Array(16).fill(i) }) as LinkOp);
  const v4requests = encodeLinkFrame(requests, v4dialect);
  add('link frame encode (100 QoS 0 MQTT 5 requests), v4 with format, Response Topic, Correlation Data', 'messages', () => encodeLinkFrame(requests, v4dialect), 100, { name: 'v4 encode without them', fn: () => encodeLinkFrame(withQos, v4dialect) });
  add('link frame decode+validate (100 QoS 0 MQTT 5 requests), v4 with format, Response Topic, Correlation Data', 'messages', () => decodeLinkFrame(v4requests), 100, { name: 'v4 decode+validate without them', fn: () => decodeLinkFrame(v4) });
  return rows;
}
