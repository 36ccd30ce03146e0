/** Messages (Deliveries) as CoAP representations: 2.05 with Content-Format, ETag and Max-Age. */
import { Code, Opt, contentFormatOf, uintOption, type CoapOption } from '../../shared/coap';
import type { Delivery } from '../platform/types';
import type { Representation } from './blockwise';
import type { CoapLimits } from './limits';
import { etagOf, maxAgeOption } from './replies';

/**
 * The Content-Format of a delivery, or undefined when its content type has no CoAP number (e.g. a
 * `text/csv` published over HTTP): then the option is left out rather than guessed.
 */
export const formatOfDelivery = (d: Pick<Delivery, 'contentType'>): number | undefined => contentFormatOf(d.contentType);

/** `maxAgeS`: the notifications' freshness unless told otherwise (a plain GET's is `readMaxAgeS`). */
export function deliveryRepresentation(d: Delivery, limits: CoapLimits, maxAgeS = limits.notificationMaxAgeS): Representation {
  const options: CoapOption[] = [etagOf(d.seq), maxAgeOption(maxAgeS)];
  const cf = formatOfDelivery(d);
  if (cf !== undefined) options.push(uintOption(Opt.ContentFormat, cf));
  return { code: Code.Content, options, payload: d.payload };
}

/** "Nothing published yet": 2.05 with an empty payload (docs/coap.md "Decisions"). */
export const emptyRepresentation = (limits: CoapLimits, maxAgeS = limits.notificationMaxAgeS): Representation => ({ code: Code.Content, options: [maxAgeOption(maxAgeS)], payload: new Uint8Array() });

/** The latest of some deliveries (highest seq), or undefined. */
export const latest = (ds: readonly Delivery[]): Delivery | undefined => ds.reduce<Delivery | undefined>((a, d) => (!a || d.seq > a.seq ? d : a), undefined);
