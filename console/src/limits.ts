/**
 * A channel's settings (`GET|PATCH /orgs/{org}/channels/{id}/limits`) as the console shows and edits
 * them: what each one means, its value as people read it, and the form's draft turned into the partial
 * update the API takes. Ranges and defaults are the actor's (objects/channel/config.ts); the API checks
 * every value and names a bad one in its 422.
 */
import type { ChannelLimits, ChannelLimitsPatch } from '../../sdk';
import { num } from './format';

/** Content types offered as choices; any other media type may be typed. */
export const COMMON_TYPES = ['application/octet-stream', 'application/senml+json', 'application/senml+cbor', 'application/json', 'text/plain'] as const;
/** The choice that shows the free-text box. */
export const OTHER = 'other';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes with their size in KiB or MiB when that reads better: 262144 → "262,144 bytes (256 KiB)". */
export function bytes(n: number): string {
  const unit = n >= MiB ? `${num(n / MiB)} MiB` : n >= KiB ? `${num(n / KiB)} KiB` : '';
  return `${n.toLocaleString('en')} bytes${unit ? ` (${unit})` : ''}`;
}

/** 0 → "Forever"; 30 → "30 days"; 0.5 → "0.5 days (12 hours)". */
export function retention(days: number): string {
  if (days === 0) return 'Forever';
  const text = `${num(days)} ${days === 1 ? 'day' : 'days'}`;
  return Number.isInteger(days) ? text : `${text} (${num(days * 24)} hours)`;
}

const rate = (r: { perSecond: number; burst: number }) => `${r.perSecond.toLocaleString('en', { maximumFractionDigits: 6 })} messages/s, bursts of ${r.burst.toLocaleString('en')}`;
const window = (w: { bytes: number; messages: number }) => `${w.messages.toLocaleString('en')} messages or ${bytes(w.bytes)}`;

/** Every setting, in the order shown: a name, its value as text, and what it does. */
export const SETTINGS: { key: keyof ChannelLimits; label: string; show: (l: ChannelLimits) => string; about: string }[] = [
  { key: 'defaultContentType', label: 'Default content type', show: (l) => l.defaultContentType, about: 'Given to a message published without one (MQTT 3.1.1, MQTT 5 without Content Type, CoAP without Content-Format, HTTP without Content-Type). application/senml+json makes such payloads checked, queryable SenML.' },
  { key: 'retentionDays', label: 'Keep stored messages', show: (l) => retention(l.retentionDays), about: 'Stored messages older than this are deleted within about an hour; retained messages stay.' },
  { key: 'maxPayloadBytes', label: 'Largest payload', show: (l) => bytes(l.maxPayloadBytes), about: 'A larger publish is refused (413). At most 1 MiB.' },
  { key: 'channelRate', label: 'Channel rate', show: (l) => rate(l.channelRate), about: 'All publishers together; beyond it a publish is refused (429).' },
  { key: 'publisherRate', label: 'Rate per publisher', show: (l) => rate(l.publisherRate), about: 'Each device, user or app on its own.' },
  { key: 'recentWindow', label: 'Replay window', show: (l) => `${l.recentWindow.toLocaleString('en')} messages`, about: "Recent messages the channel keeps for a subscriber's since= replay." },
  { key: 'replayMaxBytes', label: 'Largest replay', show: (l) => bytes(l.replayMaxBytes), about: 'Most bytes one replay sends; older messages become a gap notice.' },
  { key: 'subscriberWindow', label: 'Subscriber window', show: (l) => window(l.subscriberWindow), about: 'Unacknowledged live deliveries a flow-controlled WebSocket subscriber may have.' },
  { key: 'linkWindow', label: 'Bridge link window', show: (l) => window(l.linkWindow), about: 'The same for a protocol bridge.' },
  { key: 'maxLinkSubscriptions', label: 'Subscriptions per bridge link', show: (l) => l.maxLinkSubscriptions.toLocaleString('en'), about: 'MQTT and CoAP subscriptions one bridge may hold on the channel.' },
  { key: 'drainBatch', label: 'Storage batch', show: (l) => `${l.drainBatch.toLocaleString('en')} messages`, about: 'Most messages written to the database at once.' },
  { key: 'drainDelayMs', label: 'Storage delay', show: (l) => `${l.drainDelayMs.toLocaleString('en')} ms`, about: 'How long new messages wait to be written together.' },
];

/** The numbers the form edits, by their path in the settings object (a 422 names the same path). */
export const NUMBERS: { path: string; label: string; integer: boolean; advanced?: boolean }[] = [
  { path: 'maxPayloadBytes', label: 'Largest payload (bytes)', integer: true },
  { path: 'channelRate.perSecond', label: 'Channel rate (messages per second)', integer: false },
  { path: 'channelRate.burst', label: 'Channel burst (messages)', integer: true },
  { path: 'publisherRate.perSecond', label: 'Rate per publisher (messages per second)', integer: false },
  { path: 'publisherRate.burst', label: 'Burst per publisher (messages)', integer: true },
  { path: 'recentWindow', label: 'Replay window (messages)', integer: true, advanced: true },
  { path: 'replayMaxBytes', label: 'Largest replay (bytes)', integer: true, advanced: true },
  { path: 'subscriberWindow.messages', label: 'Subscriber window (messages)', integer: true, advanced: true },
  { path: 'subscriberWindow.bytes', label: 'Subscriber window (bytes)', integer: true, advanced: true },
  { path: 'linkWindow.messages', label: 'Bridge link window (messages)', integer: true, advanced: true },
  { path: 'linkWindow.bytes', label: 'Bridge link window (bytes)', integer: true, advanced: true },
  { path: 'maxLinkSubscriptions', label: 'Subscriptions per bridge link', integer: true, advanced: true },
  { path: 'drainBatch', label: 'Storage batch (messages)', integer: true, advanced: true },
  { path: 'drainDelayMs', label: 'Storage delay (ms)', integer: true, advanced: true },
];

/** What the form holds, as typed. */
export interface Draft {
  /** One of COMMON_TYPES, or OTHER for `otherType`. */
  contentType: string;
  otherType: string;
  keepForever: boolean;
  days: string;
  numbers: Record<string, string>;
}

type Leaf = Record<string, unknown>;
const read = (l: ChannelLimits, path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o as Leaf)[k], l);

/** The form filled with `l`. */
export function draftOf(l: ChannelLimits): Draft {
  const common = (COMMON_TYPES as readonly string[]).includes(l.defaultContentType);
  return {
    contentType: common ? l.defaultContentType : OTHER,
    otherType: common ? '' : l.defaultContentType,
    keepForever: l.retentionDays === 0,
    days: l.retentionDays === 0 ? '' : String(l.retentionDays),
    numbers: Object.fromEntries(NUMBERS.map((n) => [n.path, String(read(l, n.path))])),
  };
}

/**
 * The settings the draft changes from `l`, as the partial update the API takes: a rate or window
 * whole (the API takes both of its fields), anything unchanged left out. Values go as typed; the API
 * checks them. A box left empty throws (the form's `required` normally stops that first).
 */
export function patchOf(l: ChannelLimits, d: Draft): ChannelLimitsPatch {
  const patch: Leaf = {};
  const type = d.contentType === OTHER ? d.otherType.trim() : d.contentType;
  if (type !== l.defaultContentType) patch.defaultContentType = type;
  const days = d.keepForever ? 0 : number(d.days, 'Days to keep messages');
  if (days !== l.retentionDays) patch.retentionDays = days;
  for (const n of NUMBERS) {
    const v = number(d.numbers[n.path] ?? '', n.label);
    if (v === read(l, n.path)) continue;
    const [top, field] = n.path.split('.') as [keyof ChannelLimits, string | undefined];
    if (field === undefined) patch[top] = v;
    else patch[top] = { ...(patch[top] ?? (l[top] as Leaf)), [field]: v };
  }
  return patch as ChannelLimitsPatch;
}

function number(text: string, label: string): number {
  const v = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(v)) throw new Error(`${label}: give a number`);
  return v;
}

/**
 * The setting a problem's detail names first, if the form has it: the actor's 422 ("retentionDays must
 * be …") or the API's 400 for a value of the wrong type ("invalid body: channelRate.perSecond: …").
 */
export function settingNamed(detail: string): string | undefined {
  const path = /^(?:invalid body: )?([A-Za-z]+(?:\.[A-Za-z]+)?)\b/.exec(detail)?.[1];
  if (path === 'defaultContentType' || path === 'retentionDays') return path;
  return NUMBERS.find((n) => n.path === path)?.path;
}
