import { decodeSenmlJson } from '../../shared/senml/json';
import { mediaType, type EnvelopeJson } from '../../shared/envelope';

export interface Point {
  name: string;
  /** Seconds since the epoch (SenML time). */
  time: number;
  value: number;
  unit?: string;
}

/**
 * The numeric SenML values of a message (RFC 8428, resolved by the same decoder the workers use), or
 * none when it is not SenML JSON. Records without a time get the message's `created`.
 */
export function numericPoints(m: Pick<EnvelopeJson, 'contentType' | 'payload' | 'encoding' | 'created'>): Point[] {
  if (m.encoding || mediaType(m.contentType) !== 'application/senml+json') return [];
  try {
    return decodeSenmlJson(m.payload, m.created / 1000).flatMap((r) => (r.value === undefined ? [] : [{ name: r.name, time: r.time, value: r.value, unit: r.unit }]));
  } catch {
    return []; // the actor accepted it, so this only happens for content types it does not check
  }
}

/** Points per SenML name, each series in time order and at most `cap` long. */
export class SeriesSet {
  readonly series = new Map<string, { unit?: string; t: number[]; v: number[] }>();
  constructor(private readonly cap = 500) {}
  get points(): number {
    let n = 0;
    for (const s of this.series.values()) n += s.t.length;
    return n;
  }
  add(points: Point[]): void {
    for (const p of points) {
      let s = this.series.get(p.name);
      if (!s) this.series.set(p.name, (s = { unit: p.unit, t: [], v: [] }));
      // Usually appended at the end; an older time is inserted in order.
      let i = s.t.length;
      while (i > 0 && s.t[i - 1]! > p.time) i--;
      s.t.splice(i, 0, p.time);
      s.v.splice(i, 0, p.value);
      if (s.t.length > this.cap) {
        s.t.shift();
        s.v.shift();
      }
    }
  }
}
