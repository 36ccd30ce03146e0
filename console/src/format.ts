/** Number formatting with no browser globals, so pure modules (limits.ts) and their tests can use it. */

/** Numbers as people read them: 22.369999999999997 → 22.37 (12 significant digits). */
export const num = (v: number): string => String(Number.isInteger(v) ? v : Number(v.toPrecision(12)));
