import { useEffect, useRef, useState } from 'preact/hooks';
import type { Message, Subscription } from '../../../sdk';
import { Link } from '../router';
import { numericPoints, SeriesSet } from '../senml';
import { api } from '../session';
import { Problem, errorText, useAction, useLoad } from '../ui';
import { ChartView } from './chart-view';

const KEEP = 200;

export function ChannelHeader({ org, channel, view }: { org: string; channel: string; view: 'live' | 'history' }) {
  const info = useLoad(() => api.org(org).channels.get(channel), [org, channel]);
  const base = `/o/${encodeURIComponent(org)}/channels/${encodeURIComponent(channel)}`;
  return (
    <>
      <p class="crumbs">
        <Link href={`/o/${encodeURIComponent(org)}/channels`}>Channels</Link> /
      </p>
      <div class="row heading">
        <h1 id="page-title">
          {info.data?.name ?? 'Channel'} <span class="muted">{view === 'live' ? 'live' : 'history'}</span>
        </h1>
        <nav class="row tabs" aria-label="Channel views">
          <Link href={base}>Live</Link>
          <Link href={`${base}/history`}>History</Link>
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

/** One envelope as a list item. */
export function MessageItem({ m }: { m: Message }) {
  // Large or binary payloads kept in R2 come from the query API as a size and a payloadUrl instead.
  const body = m.payload === undefined ? `(${m.size ?? '?'} bytes, stored)` : m.encoding ? `(${m.encoding}) ${m.payload.slice(0, 200)}` : m.payload.slice(0, 2000);
  return (
    <li class="message" data-seq={m.seq}>
      <div class="meta">
        <strong>#{m.seq}</strong> <time dateTime={new Date(m.created).toISOString()}>{new Date(m.created).toLocaleTimeString()}</time> · {m.protocol} · {m.subtopic || '(no subtopic)'} ·{' '}
        <span title={m.publisher}>{m.publisher.slice(0, 12)}</span> · {m.contentType}
        {m.retained ? ' · retained' : ''}
      </div>
      <pre>{body}</pre>
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

  useEffect(() => {
    series.current = new SeriesSet();
    setMessages([]);
    let sub: Subscription | undefined;
    let dead = false;
    const take = (batch: Message[]) => {
      series.current.add(batch.flatMap(numericPoints));
      setMessages((old) => [...batch.slice().reverse(), ...old].slice(0, KEEP));
      setVersion((v) => v + 1);
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
          onMessage: (m) => take([m]),
          onGap: (g) => setError(new Error(`messages ${g.from}–${g.to} are no longer kept by the channel`)),
          onOpen: () => setState('open'),
          onRetry: (e) => setState(`reconnecting (${e.detail})`),
        });
        sub.closed.catch((e: unknown) => (setState('closed'), setError(e)));
      });
    return () => {
      dead = true;
      sub?.close();
    };
  }, [channel]);

  return (
    <section aria-labelledby="page-title">
      <ChannelHeader org={org} channel={channel} view="live" />
      <p>
        Connection: <output class={`state ${state}`}>{state}</output>
      </p>
      <Problem error={error && errorText(error)} />
      <ChartView set={series.current} version={version} caption="Numeric SenML values by name, live" />
      <PublishForm channel={channel} />
      <h2>Messages</h2>
      <ol class="messages" aria-live="polite" aria-relevant="additions">
        {messages.map((m) => (
          <MessageItem key={m.seq} m={m} />
        ))}
      </ol>
      {messages.length === 0 && <p class="muted">Waiting for messages…</p>}
    </section>
  );
}
