import { FORMAT, OPAQUE_CONTENT_TYPE } from '../../shared/link';
import type { Delivery } from '../platform/types';
import { hasWildcard, parseTopicName, TopicProblem } from './topics';

/**
 * What an MQTT 5 publisher says about its payload — Payload Format Indicator, Content Type — and
 * its Response Topic, on the way in (a PUBLISH, a will) and out (a delivery to a v5 subscriber).
 * The platform stores and checks a content type of its own (the Content Type, text/plain under
 * Payload Format Indicator 1, else the channel's default); the link's `format` bits (shared/link.ts)
 * keep what the publisher itself gave, so subscribers get it unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-20].
 */

/** The content type the platform stores: the v5 Content Type, text for Payload Format Indicator 1, else '' — the channel's default (docs/mqtt.md "Content type"). */
export function publishContentType(contentType: string | undefined, payloadFormatIndicator: boolean | undefined): string {
  return contentType ?? (payloadFormatIndicator ? 'text/plain; charset=utf-8' : '');
}

/** The link's `format` for what the publisher gave, or undefined when it gave neither property (then nothing is written). */
export function publishFormat(contentType: string | undefined, payloadFormatIndicator: boolean | undefined): number | undefined {
  if (contentType === undefined && payloadFormatIndicator === undefined) return undefined;
  const indicator = payloadFormatIndicator === undefined ? 0 : payloadFormatIndicator ? FORMAT.utf8 : FORMAT.unspecified;
  return indicator | (contentType === undefined ? 0 : FORMAT.ownContentType);
}

/** Text types, for which a message without `format` (HTTP, CoAP, WebSocket, stored before link v4) is said to be UTF-8 when its bytes are. */
const TEXT = /^text\/|charset=utf-8/i;

export interface FormatProperties {
  contentType?: string;
  payloadFormatIndicator?: boolean;
}

const NONE: FormatProperties = Object.freeze({});
const OWN_UTF8 = Object.freeze({ payloadFormatIndicator: true });
const OWN_UNSPECIFIED = Object.freeze({ payloadFormatIndicator: false });

/**
 * The Content Type and Payload Format Indicator a v5 subscriber gets. With `format`: exactly what
 * the publisher gave. Without: the stored content type unless it is application/octet-stream
 * (what "none" was stored as), and Payload Format Indicator 1 for a text type whose bytes are UTF-8
 * (`utf8` is asked only then) — a translation for publishers that have no such property.
 */
export function deliveredFormat(d: Pick<Delivery, 'contentType' | 'format'>, utf8: () => boolean): FormatProperties {
  const f = d.format;
  if (f === undefined) {
    const ct = d.contentType !== OPAQUE_CONTENT_TYPE;
    const text = TEXT.test(d.contentType) && utf8();
    return ct ? (text ? { contentType: d.contentType, payloadFormatIndicator: true } : { contentType: d.contentType }) : text ? OWN_UTF8 : NONE;
  }
  const own = (f & FORMAT.ownContentType) !== 0;
  const indicator = f & FORMAT.utf8 ? true : f & FORMAT.unspecified ? false : undefined;
  if (!own) return indicator === undefined ? NONE : indicator ? OWN_UTF8 : OWN_UNSPECIFIED;
  return indicator === undefined ? { contentType: d.contentType } : { contentType: d.contentType, payloadFormatIndicator: indicator };
}

/**
 * Why a Response Topic cannot be carried: `protocol` — not a topic name at all ([MQTT-3.3.2-14]:
 * no wildcards; [MQTT-4.7.3-1]: not empty; ill-formed UTF-8 never gets this far, reader.ts), a
 * protocol error; `refused` — a topic name, but not an Edgeflux one (`channels/{id}/messages[/…]`,
 * the only topics anybody could answer on). Null: fine.
 */
export function responseTopicProblem(topic: string): { protocol: boolean; reason: string } | null {
  if (topic === '' || hasWildcard(topic)) return { protocol: true, reason: `Response Topic ${JSON.stringify(topic.slice(0, 64))} is not a topic name: ${topic === '' ? 'empty [MQTT-4.7.3-1]' : 'wildcards [MQTT-3.3.2-14]'}` };
  try {
    parseTopicName(topic);
    return null;
  } catch (e) {
    return { protocol: false, reason: `Response Topic: ${e instanceof TopicProblem ? e.message : 'not an Edgeflux topic name'} (answers go to channels/{id}/messages[/…])` };
  }
}
