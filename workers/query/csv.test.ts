import { describe, expect, it } from 'vitest';
import { prefersCsv } from './csv';

describe('prefersCsv (Accept negotiation, RFC 9110 §12.5.1)', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['application/json', false],
    ['text/csv', true],
    ['text/csv, application/json', true],
    ['application/json, text/csv', false],
    ['text/csv;q=0.5, application/json', false],
    ['text/csv, application/json;q=0.9', true],
    ['text/csv, */*', true],
    ['text/*, application/json;q=0.1', true],
    ['text/csv;q=0, */*', false],
    ['*/*;q=0.1, text/csv', true],
    ['TEXT/CSV; Q=0.8, application/json; q=0.7', true],
    ['text/csv;q=abc', false],
    ['text/html, text/csv;q=0.9, */*;q=0.8', true],
  ])('%j → %s', (accept, csv) => {
    expect(prefersCsv(accept)).toBe(csv);
  });
});
