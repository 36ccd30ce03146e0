import { describe, expect, it } from 'vitest';
import { negotiate, toNdjson } from './negotiate';

describe('negotiate (Accept, RFC 9110 §12.5.1)', () => {
  it.each([
    [undefined, 'json'],
    ['', 'json'],
    ['*/*', 'json'],
    ['application/json', 'json'],
    ['text/csv', 'csv'],
    ['text/csv, application/json', 'csv'],
    ['application/json, text/csv', 'json'],
    ['text/csv;q=0.5, application/json', 'json'],
    ['text/csv, application/json;q=0.9', 'csv'],
    ['text/csv, */*', 'csv'],
    ['text/*, application/json;q=0.1', 'csv'],
    ['text/csv;q=0, */*', 'json'],
    ['*/*;q=0.1, text/csv', 'csv'],
    ['TEXT/CSV; Q=0.8, application/json; q=0.7', 'csv'],
    ['text/csv;q=abc', 'json'],
    ['text/html, text/csv;q=0.9, */*;q=0.8', 'csv'],
    // JSON lines
    ['application/x-ndjson', 'ndjson'],
    ['application/jsonl', 'ndjson'],
    ['application/x-ndjson, application/json', 'ndjson'],
    ['application/json, application/x-ndjson', 'json'],
    ['application/x-ndjson;q=0.5, application/json', 'json'],
    ['application/*', 'json'],
    ['application/*, text/csv;q=0.9', 'json'],
    ['application/json;q=0, application/*', 'ndjson'],
    ['application/x-ndjson;q=0, text/csv;q=0.1', 'csv'],
    ['application/xml', 'json'],
    // One format under two names: refused by either name, refused.
    ['application/json;q=0, application/x-ndjson;q=0, application/*', 'json'],
    ['application/json;q=0, application/jsonl;q=0, application/*', 'json'],
    ['application/json;q=0, application/x-ndjson;q=0, application/*, text/csv;q=0.1', 'csv'],
    // …and rated by the name the client gave, not by a wildcard standing in for the other name.
    ['application/json;q=0, application/x-ndjson;q=0.1, application/*;q=0.5, text/csv;q=0.3', 'csv'],
    ['application/json;q=0, application/jsonl;q=0.1, application/*;q=0.5, text/csv;q=0.3', 'csv'],
  ])('%j → %s', (accept, kind) => {
    expect(negotiate(accept).kind).toBe(kind);
  });

  it('answers with the JSON-lines type the client named', () => {
    expect(negotiate('application/jsonl').mediaType).toBe('application/jsonl');
    expect(negotiate('application/x-ndjson').mediaType).toBe('application/x-ndjson');
    expect(negotiate('application/json;q=0, application/x-ndjson;q=0.1, application/*;q=0.5').mediaType).toBe('application/x-ndjson');
    expect(negotiate('application/json;q=0, application/jsonl;q=0.1, application/*;q=0.5').mediaType).toBe('application/jsonl');
    expect(negotiate('application/x-ndjson;q=0.5, application/jsonl').mediaType).toBe('application/jsonl');
    expect(negotiate('application/json;q=0, application/*').mediaType).toBe('application/x-ndjson');
  });

  it('writes one JSON value per LF-ended line, nothing for no items', () => {
    expect(toNdjson([{ a: 'x\ny' }, { b: 1 }])).toBe('{"a":"x\\ny"}\n{"b":1}\n');
    expect(toNdjson([])).toBe('');
  });
});
