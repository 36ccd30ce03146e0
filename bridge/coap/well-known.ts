/**
 * Resource discovery (RFC 6690): `GET /.well-known/core` lists, in application/link-format, what
 * a client may use; with `?auth=<device key>` it also lists the channels that device may publish
 * to or observe (`GET /channels?auth=…` lists only those). Query filtering per §4.1: one
 * `attr=value` (or `href=…`), a trailing `*` matching any suffix; `auth` is not a filter.
 */
import { Code, ContentFormat, Opt, accept, queryParams, uintOption, type Block, type CoapMessage } from '../../shared/coap';
import { createHash } from 'node:crypto';
import { formatHttpPath } from '../../shared/topics';
import type { Representation } from './blockwise';
import type { Context } from './context';
import type { Exchange } from './message-layer';
import { sendBlocks } from './read';
import { diagnostic } from './replies';

/** The Content-Formats a channel takes and gives (RFC 7252 §7.2.1 `ct`, space-separated). */
const FORMATS = [ContentFormat.TextPlain, ContentFormat.OctetStream, ContentFormat.Json, ContentFormat.Cbor, ContentFormat.SenmlJson, ContentFormat.SenmlCbor].join(' ');

interface Link {
  href: string;
  attrs: [string, string | true][];
}

const CHANNELS: Link = {
  href: '/channels',
  attrs: [['rt', 'edgeflux.channels'], ['ct', '40'], ['title', 'GET ?auth=<device key>: your channels; POST /channels/{id}/messages[/{subtopic}] publishes, GET with Observe subscribes']],
};

function serialize(links: readonly Link[]): string {
  const attr = ([k, v]: [string, string | true]) => (v === true ? `;${k}` : k === 'ct' || k === 'sz' ? `;${k}=${/\s/.test(v) ? `"${v}"` : v}` : `;${k}="${v}"`);
  return links.map((l) => `<${l.href}>${l.attrs.map(attr).join('')}`).join(',');
}

/** §4.1: does the link match the filter `name=value` (value may end in `*`)? */
function matches(link: Link, name: string, pattern: string): boolean {
  const test = (v: string) => (pattern.endsWith('*') ? v.startsWith(pattern.slice(0, -1)) : v === pattern);
  if (name === 'href') return test(link.href);
  return link.attrs.some(([k, v]) => k === name && (v === true ? pattern === '' || pattern === '*' : v.split(' ').some(test) || test(v)));
}

async function channelLinks(ctx: Context, ex: Exchange, key: string): Promise<Link[]> {
  const principal = await ctx.auth.principal(ex.epKey, key);
  const [pub, sub] = await Promise.all([ctx.platform.channelsFor(principal, 'messages:publish'), ctx.platform.channelsFor(principal, 'messages:subscribe')]);
  const subs = new Set(sub);
  return [...new Set([...pub, ...sub])].sort().map((channel) => ({
    href: formatHttpPath({ channel, subtopic: '' }),
    attrs: [['rt', 'edgeflux.messages'], ['if', [pub.includes(channel) ? 'edgeflux.publish' : '', subs.has(channel) ? 'edgeflux.observe' : ''].join(' ').trim()], ['ct', FORMATS], ...(subs.has(channel) ? [['obs', true] as [string, true]] : [])],
  }));
}

/** ETag of a discovery document: 8 bytes of its SHA-256, so a client sees when the list it is fetching was rebuilt (RFC 7959 §2.4). */
const documentTag = (payload: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(payload).digest().subarray(0, 8));

/** `repKey`: the request's downloadKey (blockwise.ts: endpoint, path and whole query, so the document kept there was built for this query). */
export async function discover(ctx: Context, ex: Exchange, req: Pick<CoapMessage, 'options'>, which: 'core' | 'channels', block2: Block | undefined, repKey: string): Promise<void> {
  // RFC 7252 §5.10.4: discovery answers only in link format (RFC 6690).
  const acc = accept(req);
  if (acc !== undefined && acc !== ContentFormat.LinkFormat) return ex.respond(diagnostic(Code.NotAcceptable, `discovery answers in application/link-format (Content-Format 40), not ${acc}`));
  const q = queryParams(req);
  const key = q.get('auth');
  q.delete('auth');
  if (which === 'channels' || key !== undefined) {
    await ctx.auth.principal(ex.epKey, key); // 4.01 without a key (or with an unknown one)
  }
  // Later blocks come from the document whose first block was sent (RFC 7959 §2.4), as a read's
  // do: rebuilt, a channel connected meanwhile shifted the rest, and the client put together a list
  // that never was. And a transfer in progress is one request. A later block asked for with another
  // query (another auth=, another filter) is another request, kept apart: it gets a document built
  // for that query (and its ETag).
  const kept = block2 && block2.num > 0 ? ctx.reps.get(repKey) : undefined;
  if (kept) return sendBlocks(ctx, ex, repKey, kept, block2);
  let links = which === 'core' ? [CHANNELS] : [];
  if (key !== undefined) links = [...links, ...(await channelLinks(ctx, ex, key))];
  const [filter] = q.entries();
  if (filter) links = links.filter((l) => matches(l, filter[0], filter[1]));
  const payload = new TextEncoder().encode(serialize(links));
  const rep: Representation = { code: Code.Content, options: [uintOption(Opt.ContentFormat, ContentFormat.LinkFormat), { number: Opt.ETag, value: documentTag(payload) }], payload };
  sendBlocks(ctx, ex, repKey, rep, block2);
}
