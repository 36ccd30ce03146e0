import { z } from '@hono/zod-openapi';

/**
 * Numbers in query strings, read strictly. `z.coerce.number()` read `?offset=` (empty) as 0, `?v=`
 * as a filter on 0, `0x10` as 16, `1e3` as 1000 and ` 5` as 5 — what the caller meant is unknown,
 * so each of those is a 400 naming the parameter instead. The schema a document shows is the
 * number's (integer, its range), as a query parameter's text is read into it.
 */
const textInto = <T extends z.ZodType>(name: string, pattern: RegExp, what: string, into: T) =>
  z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    if (pattern.test(v)) return Number(v);
    ctx.addIssue({ code: 'custom', message: `${name} must be ${what}` });
    return z.NEVER;
  }, into);

/** Decimal digits only, then the range: paging offsets and limits. */
export const wholeNumber = (name: string, min: number, max: number) =>
  textInto(name, /^\d{1,16}$/, 'a whole number written in decimal digits', z.number().int().min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`));

/**
 * A decimal number: sign, fraction and exponent allowed (and `1.`, which JSON would not take); no
 * hex, no spaces, not empty. A + typed into a URL unencoded arrives as a space (form encoding): one space
 * before the number is read as that + (as the query's from/to read a zone's).
 */
export const decimalNumber = (name: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.replace(/^ (?=[\d.])/, '+') : v),
    textInto(name, /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/, 'a decimal number (e.g. 21, -0.5, 1e3)', z.number().refine(Number.isFinite, `${name} is too large`)),
  );
