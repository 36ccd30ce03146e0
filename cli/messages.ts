import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { MessageQuery } from '../sdk';
import { show, showPage } from './output';
import { integer, number } from './parse';
import { run } from './run';

/** send (HTTP publish), sub (WebSocket stream) and query (stored messages). */

interface SendOptions {
  subtopic?: string;
  file?: string;
  contentType?: string;
  retain?: boolean;
  name?: string;
  value?: number;
  stringValue?: string;
  boolValue?: string;
  unit?: string;
  time?: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON when it parses as a JSON object or array, text when it is UTF-8, bytes otherwise. */
function guessType(bytes: Uint8Array): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return 'application/octet-stream';
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null) return 'application/json';
  } catch {
    /* text */
  }
  return 'text/plain; charset=utf-8';
}

/** One SenML record (RFC 8428) from the helper flags. */
function senml(o: SendOptions): Record<string, unknown>[] {
  const record: Record<string, unknown> = { n: o.name };
  if (o.unit !== undefined) record.u = o.unit;
  if (o.value !== undefined) record.v = o.value;
  else if (o.stringValue !== undefined) record.vs = o.stringValue;
  else if (o.boolValue !== undefined) record.vb = o.boolValue === 'true';
  else throw new Error('--name needs --value, --string-value or --bool-value');
  if (o.time !== undefined) record.t = o.time;
  return [record];
}

/** The payload: SenML flags, the argument, --file, or stdin, in that order. */
function payloadOf(arg: string | undefined, o: SendOptions): { body: Uint8Array; contentType: string } {
  if (o.name !== undefined) return { body: new TextEncoder().encode(JSON.stringify(senml(o))), contentType: o.contentType ?? 'application/senml+json' };
  let body: Uint8Array;
  if (arg !== undefined) body = new TextEncoder().encode(arg);
  else if (o.file !== undefined) body = readFileSync(o.file === '-' ? 0 : o.file);
  else if (!process.stdin.isTTY) body = readFileSync(0);
  else throw new Error('no payload: give it as an argument, with --file, on stdin, or with --name/--value');
  return { body, contentType: o.contentType ?? guessType(body) };
}

function sendCommand(program: Command): void {
  program
    .command('send <channel> [payload]')
    .description('publish one message over HTTP (payload: argument, --file, stdin, or SenML flags)')
    .option('-s, --subtopic <subtopic>')
    .option('-f, --file <file>', "read the payload from a file ('-' for stdin)")
    .option('-t, --content-type <type>', 'default: guessed (JSON, text or bytes); application/senml+json with --name')
    .option('--retain', 'keep as the retained message of its subtopic')
    .option('-n, --name <name>', 'SenML record name, e.g. temp')
    .option('-v, --value <number>', 'SenML numeric value', number)
    .option('--string-value <text>', 'SenML string value')
    .addOption(new Option('--bool-value <bool>', 'SenML boolean value').choices(['true', 'false']))
    .option('-u, --unit <unit>', 'SenML unit, e.g. Cel')
    .option('--time <seconds>', 'SenML time (seconds; negative = relative to now)', number)
    .action(
      run(async (ctx, channel: string, arg: string | undefined, o: SendOptions) => {
        const { body, contentType } = payloadOf(arg, o);
        show(ctx.out, await ctx.client.publish(channel, body, { subtopic: o.subtopic, contentType, retain: o.retain }));
      }),
    );
}

function subCommand(program: Command): void {
  program
    .command('sub <channel>')
    .description('stream a channel over WebSocket: one JSON envelope per line (Ctrl-C stops)')
    .option('-s, --subtopic <filter>', 'subtopic filter, + and # allowed')
    .option('--since <seq>', 'replay what came after this seq first', integer)
    .option('--count <n>', 'exit after n messages', integer)
    .action(
      run(async (ctx, channel: string, o: { subtopic?: string; since?: number; count?: number }) => {
        let seen = 0;
        const sub = ctx.client.subscribe(channel, {
          subtopic: o.subtopic,
          since: o.since,
          onMessage: (m) => {
            process.stdout.write(JSON.stringify(m) + '\n');
            if (o.count !== undefined && ++seen >= o.count) sub.close();
          },
          // The channel's `subscribed` frame is a status line, not an envelope: stderr, like the others.
          onSubscribed: ({ seq, since }) =>
            process.stderr.write(`subscribed to ${channel}${o.subtopic ? `/${o.subtopic}` : ''} at seq ${seq}${since !== undefined ? `, resuming after seq ${since}` : ''}\n`),
          onGap: (g) => process.stderr.write(`gap: seqs ${g.from}..${g.to} are no longer kept\n`),
          onRetry: (e, ms) => process.stderr.write(`connection lost (${e.message}); reconnecting in ${ms} ms\n`),
        });
        const stop = () => sub.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          await sub.closed;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      }),
    );
}

/** Writes to stdout, waiting when its buffer is full, so a long --all export holds one page at a time. */
const write = async (text: string) => {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain');
};

interface QueryOptions extends Omit<MessageQuery, 'v' | 'vs' | 'vb' | 'vd'> {
  subtopic?: string;
  value?: number;
  stringValue?: string;
  boolValue?: 'true' | 'false';
  dataValue?: string;
  csv?: boolean;
  all?: boolean;
}

function queryCommand(program: Command): void {
  const choice = (flags: string, description: string, choices: string[]) => new Option(flags, description).choices(choices);
  program
    .command('query <channel>')
    .description('stored messages, SenML records or aggregates (docs/query.md)')
    .option('-s, --subtopic <filter>', 'exact, a/# or + segments')
    .addOption(choice('--format <format>', 'messages (default), senml or json', ['messages', 'senml', 'json']))
    .option('--from <time>', 'ms since epoch or ISO-8601')
    .option('--to <time>', 'ms since epoch or ISO-8601')
    .option('--publisher <id>')
    .addOption(choice('--protocol <protocol>', 'http, ws, mqtt or coap', ['http', 'ws', 'mqtt', 'coap']))
    .option('-n, --name <name>', 'SenML record name')
    .option('-v, --value <number>', 'SenML value, compared with --comparator', number)
    .addOption(choice('--comparator <op>', 'eq (default), lt, le, gt, ge', ['eq', 'lt', 'le', 'gt', 'ge']))
    .option('--string-value <text>')
    .addOption(choice('--bool-value <bool>', 'true or false', ['true', 'false']))
    .option('--data-value <base64url>', 'SenML data value, as stored: canonical unpadded base64url')
    .addOption(choice('--aggregation <fn>', 'min, max, avg, sum (SenML) or count', ['min', 'max', 'avg', 'sum', 'count']))
    .option('--interval <width>', 'aggregation bucket: 500ms, 10s, 5m, 1h, 1d')
    .addOption(choice('--order <order>', 'desc (default) or asc', ['asc', 'desc']))
    .option('--offset <n>', 'items to skip', integer)
    .option('--limit <n>', 'page size (max 1000)', integer)
    .option('--cursor <next>', "the page after an earlier one: its `next` (same format and order; not with --offset)")
    .option('--no-total', 'do not count every match (cheaper on big channels)')
    .option('--all', 'every page, followed by cursor: JSON lines (one item each), or one CSV table with --csv')
    .option('--csv', 'CSV (RFC 4180) instead of JSON or a table')
    .action(
      run(async (ctx, channel: string, o: QueryOptions) => {
        const { value, stringValue, boolValue, dataValue, csv, total, all, ...rest } = o;
        const q = { ...rest, v: value, vs: stringValue, vb: boolValue === undefined ? undefined : boolValue === 'true', vd: dataValue, total: total === false ? false : undefined };
        if (all && q.aggregation) throw new Error('--all walks listings; aggregations page with --offset');
        if (all && csv) {
          for await (const chunk of ctx.client.queryCsvAll(channel, q)) await write(chunk);
          return;
        }
        if (all) {
          for await (const item of ctx.client.queryAll(channel, q)) await write(`${JSON.stringify(item)}\n`);
          return;
        }
        if (csv) return void process.stdout.write(await ctx.client.queryCsv(channel, q));
        const page = await ctx.client.query(channel, q);
        const columns = o.aggregation ? ['time', 'name', 'unit', 'value', 'count'] : o.format === 'senml' ? ['seq', 'time', 'name', 'value', 'unit', 'stringValue', 'boolValue', 'dataValue'] : ['seq', 'created', 'subtopic', 'publisher', 'protocol', 'contentType', 'payload'];
        showPage(ctx.out, page, columns);
      }),
    );
}

export function messageCommands(program: Command): void {
  sendCommand(program);
  subCommand(program);
  queryCommand(program);
}
