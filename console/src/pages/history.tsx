import { useRef, useState } from 'preact/hooks';
import type { Message, MessageQuery } from '../../../sdk';
import { SeriesSet } from '../senml';
import { api } from '../session';
import { Pager, Problem, Scroll, isNotFound, num, saveFile, useAction } from '../ui';
import { ChartView } from './chart-view';
import { ChannelHeader, MessageItem } from './live';

type Row = Record<string, unknown>;
interface Result {
  query: MessageQuery;
  total?: number;
  offset: number;
  limit: number;
  items: Row[];
  aggregation?: string;
}

/** The form's fields as query parameters (docs/query.md); datetime-local values become ISO instants. */
function toQuery(f: FormData): MessageQuery {
  const q: Record<string, string> = {};
  for (const [k, raw] of f) {
    const v = String(raw).trim();
    if (v) q[k] = k === 'from' || k === 'to' ? new Date(v).toISOString() : v;
  }
  if (q.v === undefined) delete q.comparator;
  // Sent as query parameters, as typed; the API parses and checks them (a 400 problem names a bad one).
  return q as MessageQuery;
}

/** The same filters, whatever the page (`offset`). */
function sameQuery(a: MessageQuery, b: MessageQuery): boolean {
  const key = ({ offset: _, ...q }: MessageQuery) => JSON.stringify(Object.entries(q).sort(([x], [y]) => (x < y ? -1 : 1)));
  return key(a) === key(b);
}

/** Numeric points of a result for the chart: SenML records (time in s) or aggregated buckets (time in ms). */
function chartOf(r: Result): SeriesSet {
  const set = new SeriesSet(5000);
  const aggregated = r.aggregation !== undefined;
  set.add(
    r.items.flatMap((it) =>
      typeof it.value === 'number' && typeof it.time === 'number'
        ? [{ name: String(it.name ?? r.aggregation ?? 'value'), time: aggregated ? it.time / 1000 : it.time, value: it.value, unit: typeof it.unit === 'string' ? it.unit : undefined }]
        : [],
    ),
  );
  return set;
}

/** Times as dates: `created` and aggregated bucket times are ms, SenML record times are seconds. */
function cell(key: string, v: unknown, aggregated: boolean): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' && (key === 'created' || key === 'time' || key === 'updateTime')) return new Date(key === 'created' || aggregated ? v : v * 1000).toLocaleString();
  if (typeof v === 'number') return num(v);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function Table({ items, aggregated }: { items: Row[]; aggregated: boolean }) {
  const keys = [...new Set(items.flatMap((it) => Object.keys(it)))];
  return (
    <table class="results">
      <thead>
        <tr>
          {keys.map((k) => (
            <th scope="col" key={k}>
              {k}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {items.map((it, i) => (
          <tr key={i}>
            {keys.map((k) => (
              <td key={k}>{cell(k, it[k], aggregated)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The most CSV "Download all" gathers in the page before it stops (the whole file is in memory). */
const ALL_MAX_BYTES = 256 * 2 ** 20;
const utf8 = new TextEncoder();

/** Stored messages with the query API's filters and aggregation; the same query as CSV. */
export function HistoryPage({ org, channel }: { org: string; channel: string }) {
  const form = useRef<HTMLFormElement>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [version, setVersion] = useState(0);
  const act = useAction();

  // A failed query shows its error alone: the result of an earlier one would read as this one's.
  const run = (query: MessageQuery) =>
    void act
      .run(async () => {
        const page = await api.query(channel, query);
        setResult({ query, ...page, items: page.items as unknown as Row[] });
        setVersion((v) => v + 1);
      })
      .then((ok) => ok || setResult(null));
  // The CSV of the query the form holds, at the offset shown when that is its result (Next, then
  // Download: that offset, not the first page's). The query is read again, not the rows shown: on a
  // channel still receiving (newest first) the same offset may hold newer rows by then.
  const download = () => {
    if (!form.current) return;
    const typed = toQuery(new FormData(form.current));
    const query = result && sameQuery(result.query, typed) ? result.query : typed;
    void act.run(async () => {
      const csv = await api.queryCsv(channel, query);
      const offset = Number(query.offset ?? 0);
      saveFile(new Blob([csv], { type: 'text/csv' }), `channel-${channel}${offset > 0 ? `-offset-${offset}` : ''}-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`);
    });
  };
  // Every page of the typed query (by cursor, 1000 rows a page), as one CSV table. Cancellable
  // between pages; past ALL_MAX_BYTES it stops and says so, since the browser holds it all at once.
  const [all, setAll] = useState<{ pages: number; bytes: number } | null>(null);
  const cancelAll = useRef(false);
  const downloadAll = () => {
    if (!form.current) return;
    const { offset: _o, cursor: _c, ...typed } = toQuery(new FormData(form.current));
    cancelAll.current = false;
    setAll({ pages: 0, bytes: 0 });
    void act
      .run(async () => {
        if (typed.aggregation) throw new Error('Download all walks messages or records; an aggregation pages by offset: download its pages with Download CSV');
        const chunks: string[] = [];
        let bytes = 0;
        for await (const chunk of api.queryCsvAll(channel, { ...typed, limit: 1000 })) {
          if (cancelAll.current) return;
          chunks.push(chunk);
          bytes += utf8.encode(chunk).length;
          if (bytes > ALL_MAX_BYTES) throw new Error(`stopped after ${chunks.length} pages: more than ${ALL_MAX_BYTES / 2 ** 20} MiB of CSV is more than a browser tab should hold; narrow the query (from, to, subtopic) or use the CLI: edgeflux query ${channel} --all --csv`);
          setAll({ pages: chunks.length, bytes });
        }
        saveFile(new Blob(chunks, { type: 'text/csv' }), `channel-${channel}-all-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`);
      })
      .finally(() => setAll(null));
  };
  const envelopes = result && !result.aggregation && (result.query.format ?? 'messages') === 'messages';
  const chart = result ? chartOf(result) : null;

  return (
    <section aria-labelledby="page-title">
      <ChannelHeader org={org} channel={channel} view="history" />
      <form
        ref={form}
        class="query"
        onSubmit={(e) => {
          e.preventDefault();
          run(toQuery(new FormData(e.currentTarget)));
        }}
      >
        <fieldset>
          <legend>What</legend>
          <label>
            Format
            <select name="format">
              <option value="messages">messages (envelopes)</option>
              <option value="senml">senml (records)</option>
              <option value="json">json (documents)</option>
            </select>
          </label>
          <label>
            Aggregation
            <select name="aggregation">
              <option value="">none</option>
              {['avg', 'min', 'max', 'sum', 'count'].map((a) => (
                <option key={a}>{a}</option>
              ))}
            </select>
          </label>
          <label>
            Interval
            <input name="interval" placeholder="1m, 1h, 1d" pattern="\d+(ms|s|m|h|d)?" />
          </label>
          <label>
            Order
            <select name="order">
              <option value="desc">newest first</option>
              <option value="asc">oldest first</option>
            </select>
          </label>
          <label>
            Limit
            <input name="limit" type="number" min={1} max={1000} defaultValue="100" />
          </label>
        </fieldset>
        <fieldset>
          <legend>Filters</legend>
          <label>
            Subtopic
            <input name="subtopic" placeholder="lab/# or +/temp" />
          </label>
          <label>
            Publisher
            <input name="publisher" />
          </label>
          <label>
            Protocol
            <select name="protocol">
              <option value="">any</option>
              {['http', 'ws', 'mqtt', 'coap'].map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
          <label>
            From
            <input name="from" type="datetime-local" step="1" />
          </label>
          <label>
            To
            <input name="to" type="datetime-local" step="1" />
          </label>
          <label>
            SenML name
            <input name="name" placeholder="sensor/temp" />
          </label>
          <label>
            Value
            <span class="row tight">
              <select name="comparator" aria-label="Comparator">
                <option value="eq">=</option>
                <option value="lt">&lt;</option>
                <option value="le">≤</option>
                <option value="gt">&gt;</option>
                <option value="ge">≥</option>
              </select>
              <input name="v" type="number" step="any" aria-label="Value" />
            </span>
          </label>
        </fieldset>
        <div class="row">
          <button type="submit" disabled={act.busy}>
            Run query
          </button>
          <button type="button" class="quiet" disabled={act.busy} onClick={download}>
            Download CSV
          </button>
          <button type="button" class="quiet" disabled={act.busy} title="Every page of this query, as one CSV file" onClick={downloadAll}>
            Download all (CSV)
          </button>
          {all && (
            <>
              <span class="muted" role="status" data-all-pages={all.pages}>
                {all.pages} {all.pages === 1 ? 'page' : 'pages'} ({Math.ceil(all.bytes / 1024)} KiB)…
              </span>
              <button type="button" class="quiet" onClick={() => (cancelAll.current = true)}>
                Cancel
              </button>
            </>
          )}
        </div>
      </form>
      {/* A channel that is not there: the header says so once. */}
      <Problem error={isNotFound(act.error) ? null : act.error} />
      {/* In the page before the first result, empty: a live region that comes with its text is not read. */}
      <p role="status" class="muted" data-result-count={result?.items.length}>
        {!result ? '' : result.total !== undefined ? `${result.total} matching, showing ${result.items.length}` : `${result.items.length} ${result.items.length === 1 ? 'row' : 'rows'}`}
      </p>
      {result && (
        <>
          {chart && chart.points > 1 && <ChartView set={chart} version={version} caption={result.aggregation ? `${result.aggregation} per bucket` : 'Numeric values by name'} />}
          {result.items.length === 0 ? (
            <p class="muted">Nothing matches this query{result.total ? ' on this page' : ''}.</p>
          ) : envelopes ? (
            <ol class="messages">
              {result.items.map((m) => (
                <MessageItem key={String(m.seq)} m={m as unknown as Message} channel={channel} />
              ))}
            </ol>
          ) : (
            <Scroll label="Query result">
              <Table items={result.items} aggregated={result.aggregation !== undefined} />
            </Scroll>
          )}
          {result.total !== undefined && <Pager total={result.total} offset={result.offset} limit={result.limit} onOffset={(offset) => run({ ...result.query, offset })} />}
        </>
      )}
    </section>
  );
}
