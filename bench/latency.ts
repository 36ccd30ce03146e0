/**
 * End-to-end latency: the sender writes its clock (performance.now(), ms, this process) into the
 * payload as the last SenML field `t`; the receiver reads it back and records now − t in an HDR
 * histogram (microseconds, 3 significant digits), so p50/p90/p99/max come from every message, not
 * a sample. Sender and receiver are the same process, so there is no clock skew.
 */
import * as hdr from 'hdr-histogram-js';

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  count: number;
}

export class LatencyRecorder {
  private h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });

  /** Records the latency of every stamp found in `bytes` (one frame may carry several messages); returns how many. */
  record(bytes: Buffer | string): number {
    const text = typeof bytes === 'string' ? bytes : bytes.toString('latin1');
    const now = performance.now();
    let n = 0;
    for (const m of text.matchAll(STAMP)) {
      this.h.recordValue(Math.max(1, Math.round((now - Number(m[1])) * 1000)));
      n++;
    }
    return n;
  }

  /** Milliseconds. */
  summary(): Latency {
    const at = (p: number) => this.h.getValueAtPercentile(p) / 1000;
    return { p50: at(50), p90: at(90), p99: at(99), max: this.h.maxValue / 1000, count: this.h.totalCount };
  }
}

/** `"t":123.456` — plain, or with the quote escaped when the payload travels inside a JSON string. */
const STAMP = /"t\\?":(\d+(?:\.\d+)?)/g;

/** A one-record SenML pack (RFC 8428) whose time is the send clock: relative seconds, valid SenML. */
export function stampedSenml(publisher: string): string {
  return `[{"bn":"${publisher}/","n":"temp","u":"Cel","v":21.5,"t":${performance.now().toFixed(3)}}]`;
}
