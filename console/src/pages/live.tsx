import { useEffect, useRef, useState } from 'preact/hooks';
import { fromBase64, type Message, type Subscription } from '../../../sdk';
import { mayManage, useRole } from '../access';
import { payloadFileName, showBytes } from '../payload';
import { Link } from '../router';
import { numericPoints, SeriesSet } from '../senml';
import { api } from '../session';
import { PageHeading, Problem, errorText, isNotFound, saveFile, useAction, useLoad, useTitle } from '../ui';
import { ChartView } from './chart-view';

const KEEP = 200;
/**
 * Messages arriving over the socket are shown together at most this often: one render, one sort and
 * one chart redraw per batch rather than per message, so a busy channel (hundreds a second) leaves
 * the page responsive. A timer, not an animation frame, so a hidden tab still takes them in.
 */
const BATCH_MS = 100;
/** Messages waiting for the timer past which they are taken at once (a hidden tab's timers are slow). */
const PENDING_MAX = 1000;
/** Seqs remembered to tell a replayed retained message from a new one. */
const SEEN_MAX = 20 * KEEP;
/**
 * New messages are told to screen readers at most this often, and in one sentence: a lone message on
 * a quiet channel at once (its seq, subtopic and the start of its payload), then whatever came in
 * meanwhile as a count. A live region on the list itself would read every message, hundreds a second.
 */
export const ANNOUNCE_MS = 5000;

/** What the status line says about new messages: one of them in words, or how many. */
function newsOf(count: number, newest: Message): string {
  if (count > 1) return `${count} new messages, newest #${newest.seq}`;
  const text = newest.payload !== undefined && !newest.encoding ? `: ${newest.payload.slice(0, 100)}` : '';
  return `New message #${newest.seq}${newest.subtopic ? ` on ${newest.subtopic}` : ''}${text}`;
}

export function ChannelHeader({ org, channel, view }: { org: string; channel: string; view: 'live' | 'history' | 'settings' }) {
  const info = useLoad(() => api.org(org).channels.get(channel), [org, channel]);
  const base = `/o/${encodeURIComponent(org)}/channels/${encodeURIComponent(channel)}`;
  useTitle(`${info.data?.name ?? 'Channel'} ${view}`);
  return (
    <>
      <p class="crumbs">
        <Link href={`/o/${encodeURIComponent(org)}/channels`}>Channels</Link> /
      </p>
      <div class="row heading">
        <PageHeading>
          {info.data?.name ?? 'Channel'} <span class="muted">{view}</span>
        </PageHeading>
        <nav class="row tabs" aria-label="Channel views">
          <Link href={base}>Live</Link>
          <Link href={`${base}/history`}>History</Link>
          <Link href={`${base}/settings`}>Settings</Link>
        </nav>
      </div>
      <p class="muted">
        Id <code>{channel}</code>
      </p>
      <Problem error={info.error} />
    </>
  );
}

function PublishForm({ channel }: { channel: string }) {
  const act = useAction();
  const [done, setDone] = useState('');
  return (
    <details class="publish">
      <summary>Publish a message</summary>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          void act.run(async () => {
            const r = await api.publish(channel, String(f.get('payload')), { subtopic: String(f.get('subtopic') || '') || undefined, contentType: String(f.get('contentType')) });
            setDone(`Published as seq ${r.seq}`);
          });
        }}
      >
        <div class="row">
          <label>
            Subtopic
            <input name="subtopic" placeholder="lab/temp" />
          </label>
          <label>
            Content type
            <select name="contentType">
              <option>application/senml+json</option>
              <option>application/json</option>
              <option>text/plain</option>
            </select>
          </label>
        </div>
        <label>
          Payload
          <textarea name="payload" rows={2} required defaultValue='[{"n":"temp","u":"Cel","v":21.5}]' />
        </label>
        <Problem error={act.error} />
        <div class="row">
          <button type="submit" disabled={act.busy}>
            Publish
          </button>
          <span aria-live="polite">{done}</span>
        </div>
      </form>
    </details>
  );
}

/**
 * A payload: text as it came; other bytes (base64 in JSON) as text when they are UTF-8, else as hex,
 * marked which, with a download. Payloads kept in R2 come from the query API as a size and a
 * payloadUrl: fetched with the session's credential on request, then shown and saved the same way.
 */
function Payload({ m, channel }: { m: Message; channel: string }) {
  const [fetched, setFetched] = useState<{ bytes: Uint8Array; contentType: string } | null>(null);
  const act = useAction();
  if (m.payload !== undefined && !m.encoding) return <pre>{m.payload.slice(0, 2000)}</pre>;
  const bytes = fetched?.bytes ?? (m.payload !== undefined ? fromBase64(m.payload) : null);
  const contentType = fetched?.contentType ?? m.contentType;
  const shown = bytes && showBytes(bytes);
  const download = () =>
    void act.run(async () => {
      const got = bytes ? { bytes, contentType } : await api.payload(channel, m.seq);
      setFetched(got);
      // Saved as bytes, whatever type the publisher gave (text/html, SVG): never a document of this origin.
      saveFile(new Blob([got.bytes.slice()], { type: 'application/octet-stream' }), payloadFileName(m.seq, got.contentType));
    });
  const size = bytes?.length ?? m.size;
  return (
    <>
      <div class="row tight">
        <span class="muted">
          ({size ?? '?'} bytes{!shown ? ', stored' : shown.as === 'utf-8' ? ', shown as UTF-8 text' : ', shown as hex'})
        </span>
        <button type="button" class="link" aria-label={`Download the payload of message ${m.seq}`} disabled={act.busy} onClick={download}>
          Download
        </button>
      </div>
      {shown && <pre data-shown-as={shown.as}>{shown.text}</pre>}
      <Problem error={act.error} />
    </>
  );
}

/** One envelope as a list item. */
export function MessageItem({ m, channel }: { m: Message; channel: string }) {
  return (
    <li class="message" data-seq={m.seq}>
      <div class="meta">
        <strong>#{m.seq}</strong> <time dateTime={new Date(m.created).toISOString()}>{new Date(m.created).toLocaleTimeString()}</time> · {m.protocol} · {m.subtopic || '(no subtopic)'} ·{' '}
        <span title={m.publisher}>{m.publisher.slice(0, 12)}</span> · {m.contentType}
        {m.retained || m.retain ? ' · retained' : ''}
      </div>
      <Payload m={m} channel={channel} />
    </li>
  );
}

/** Messages streaming in over a WebSocket, and a live chart of their numeric SenML values. */
export function LivePage({ org, channel }: { org: string; channel: string }) {
  const [messages, setMessages] = useState<Message[]>([]);
  const [state, setState] = useState('connecting');
  const [error, setError] = useState<unknown>(null);
  const series = useRef(new SeriesSet());
  const [version, setVersion] = useState(0);
  const mayPublish = mayManage(useRole(), 'messages');
  const [news, setNews] = useState('');
  const [announce, setAnnounce] = useState(true);
  const announcing = useRef(announce);
  announcing.current = announce;

  useEffect(() => {
    series.current = new SeriesSet();
    setMessages([]);
    let sub: Subscription | undefined;
    let dead = false;
    const seen = new Set<number>();
    let pending: Message[] = [];
    let flush: ReturnType<typeof setTimeout> | undefined;
    // Messages from the socket not yet told to screen readers; a quiet spell after each telling.
    let untold = 0;
    let newest: Message | undefined;
    let quiet: ReturnType<typeof setTimeout> | undefined;
    const tell = () => {
      quiet = undefined;
      if (!untold || !newest) return;
      if (announcing.current) setNews(newsOf(untold, newest));
      untold = 0;
      newest = undefined;
      quiet = setTimeout(tell, ANNOUNCE_MS);
    };
    const drain = () => {
      clearTimeout(flush);
      flush = undefined;
      const batch = pending;
      pending = [];
      if (dead) return;
      const fresh = take(batch);
      if (!fresh.length) return;
      untold += fresh.length;
      newest = fresh.reduce((a, b) => (b.seq > a.seq ? b : a), newest ?? fresh[0]!);
      if (!quiet) tell();
    };
    const arrived = (m: Message) => {
      pending.push(m);
      // A hidden tab's timers are throttled (to once a second or less): a busy channel would pile
      // up messages meanwhile. Past PENDING_MAX they are taken at once, still as one batch.
      if (pending.length >= PENDING_MAX) drain();
      else flush ??= setTimeout(drain, BATCH_MS);
    };
    /** Shows a batch; returns the messages in it not shown before. */
    const take = (batch: Message[]): Message[] => {
      // A retained message the socket sends may be one already shown (before, or earlier in this
      // batch): it is marked, not shown twice.
      const fresh: Message[] = [];
      const marked = new Set<number>();
      for (const m of batch) {
        if (!seen.has(m.seq)) {
          seen.add(m.seq);
          fresh.push(m);
        } else if (m.retained) marked.add(m.seq);
      }
      // Bounded: the oldest seqs (first in) go; a replay that old would fall off the kept list anyway.
      if (seen.size > SEEN_MAX) for (const seq of seen) if (seen.size > SEEN_MAX / 2) seen.delete(seq);
      series.current.add(fresh.flatMap(numericPoints));
      setMessages((old) => {
        const all = [...fresh, ...old].sort((a, b) => b.seq - a.seq).slice(0, KEEP);
        return marked.size ? all.map((m) => (marked.has(m.seq) && !m.retained ? { ...m, retained: true } : m)) : all;
      });
      setVersion((v) => v + 1);
      return fresh;
    };
    // The recent past from the query API, then live from the seq after it: the actor replays whatever came
    // in between. Nothing stored yet means since=0, so messages not yet drained to D1 are replayed too.
    void api
      .query(channel, { limit: 50, order: 'desc' })
      .then((page) => ({ past: page.items.slice().reverse(), known: true }))
      .catch((e: unknown) => (setError(e), { past: [] as Message[], known: false }))
      .then(({ past, known }) => {
        if (dead) return;
        take(past);
        setState('connecting');
        sub = api.subscribe(channel, {
          since: past.length ? past[past.length - 1]!.seq : known ? 0 : undefined,
          onMessage: arrived,
          onGap: (g) => setError(new Error(`messages ${g.from}–${g.to} are no longer kept by the channel`)),
          onOpen: () => setState('open'),
          onRetry: (e) => setState(`reconnecting (${e.detail})`),
        });
        sub.closed.catch((e: unknown) => (setState('closed'), setError(e)));
      });
    return () => {
      dead = true;
      clearTimeout(flush);
      clearTimeout(quiet);
      sub?.close();
    };
  }, [channel]);

  return (
    <section aria-labelledby="page-title">
      <ChannelHeader org={org} channel={channel} view="live" />
      <p>
        Connection: <output class={`state ${state}`}>{state}</output>
      </p>
      {/* A channel that is not there: the header says so once. */}
      <Problem error={error && !isNotFound(error) && errorText(error)} />
      <ChartView set={series.current} version={version} caption="Numeric SenML values by name, live" />
      {mayPublish && <PublishForm channel={channel} />}
      <div class="row heading">
        <h2>Messages</h2>
        <label class="check">
          <input type="checkbox" checked={announce} onChange={(e) => {
              setNews('');
              setAnnounce(e.currentTarget.checked);
            }} /> Announce new messages
        </label>
      </div>
      {/* Not the list: a screen reader would read every message. A sentence at most every few seconds. */}
      <p role="status" class="sr-only" data-news>
        {announce ? news : ''}
      </p>
      <ol class="messages">
        {messages.map((m) => (
          <MessageItem key={m.seq} m={m} channel={channel} />
        ))}
      </ol>
      {messages.length === 0 && <p class="muted">Waiting for messages…</p>}
    </section>
  );
}
