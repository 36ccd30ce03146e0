import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from './processes';

/**
 * Migrations that move stored data, run by wrangler on a local D1 the way `npm start` and a
 * deployment apply them: the database is first migrated up to the one before, given rows in the
 * old layout, then migrated on.
 */
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'edgeflux-migrations-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function wrangler(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(join(root, 'node_modules', '.bin', 'wrangler'), [...args, '--local', '--persist-to', join(dir, 'state'), '-c', join(dir, 'wrangler.toml')], { cwd: dir, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' } });
    return stdout;
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`wrangler ${args.join(' ')} failed:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}
const migrateUpTo = async (last: string) => {
  for (const f of readdirSync(join(root, 'migrations')).filter((f) => f.slice(0, 4) <= last)) copyFileSync(join(root, 'migrations', f), join(dir, 'migrations', f));
  await wrangler('d1', 'migrations', 'apply', 'DB');
};
const sql = async (command: string): Promise<Record<string, unknown>[]> => {
  const out = JSON.parse(await wrangler('d1', 'execute', 'DB', '--json', '--command', command)) as { results: Record<string, unknown>[] }[];
  return out.flatMap((r) => r.results);
};

describe('0004_message_keys', () => {
  it('moves stored messages and records to integer keys, and reads them back the same through the views', async () => {
    mkdirSync(join(dir, 'migrations'));
    writeFileSync(join(dir, 'wrangler.toml'), 'name = "migrations-test"\ncompatibility_date = "2025-01-01"\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "edgeflux"\ndatabase_id = "00000000-0000-0000-0000-000000000000"\nmigrations_dir = "migrations"\n');
    await migrateUpTo('0003');
    const [a, b] = ['0b6f5a52-0000-4000-8000-00000000000a', '0b6f5a52-0000-4000-8000-00000000000b'];
    await sql(
      `INSERT INTO messages (channel_id, seq, subtopic, publisher, protocol, content_type, created, size, payload, blob_key, retained) VALUES
        ('${a}', 1, '', 'dev-1', 'mqtt', 'application/senml+json', 1000, 17, '[{"n":"t","v":1}]', NULL, 0),
        ('${a}', 2, 'x/y', 'dev-2', 'http', 'image/png', 2000, 9000, NULL, 'channels/${a}/0000000000000002', 1),
        ('${b}', 1, '', 'dev-1', 'coap', 'text/plain', 3000, 2, 'hi', NULL, 0);
       INSERT INTO senml_records (channel_id, seq, idx, subtopic, publisher, created, name, time, unit, value, string_value, bool_value, data_value, sum, update_time) VALUES
        ('${a}', 1, 0, '', 'dev-1', 1000, 't', 1.5, 'Cel', 1, NULL, NULL, NULL, NULL, NULL),
        ('${a}', 1, 1, '', 'dev-1', 1000, 's', 2.5, NULL, NULL, 'ok', 1, 'AQ', 3, 60);`,
    );
    const before = { messages: await sql('SELECT * FROM messages ORDER BY channel_id, seq'), records: await sql('SELECT * FROM senml_records ORDER BY channel_id, seq, idx') };
    expect(before.messages).toHaveLength(3);
    expect(before.records).toHaveLength(2);

    await migrateUpTo('0004');
    expect(await sql('SELECT * FROM messages ORDER BY channel_id, seq')).toEqual(before.messages);
    expect(await sql('SELECT * FROM senml_records ORDER BY channel_id, seq, idx')).toEqual(before.records);
    expect(await sql("SELECT name, type FROM sqlite_master WHERE name IN ('messages', 'senml_records') ORDER BY name")).toEqual([
      { name: 'messages', type: 'view' },
      { name: 'senml_records', type: 'view' },
    ]);
    // Each id once, each row by its keys.
    expect(await sql('SELECT channel_id FROM channel_keys ORDER BY key')).toEqual([{ channel_id: a }, { channel_id: b }]);
    expect(await sql('SELECT publisher FROM publisher_keys ORDER BY key')).toEqual([{ publisher: 'dev-1' }, { publisher: 'dev-2' }]);
    expect(await sql('SELECT ch, seq, pub FROM message_rows ORDER BY ch, seq')).toEqual([
      { ch: 1, seq: 1, pub: 1 },
      { ch: 1, seq: 2, pub: 2 },
      { ch: 2, seq: 1, pub: 1 },
    ]);
    const indexes = await sql("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('message_rows', 'senml_rows') AND name NOT LIKE 'sqlite_%' ORDER BY name");
    expect(indexes).toEqual(
      ['messages_channel_created', 'messages_channel_publisher', 'messages_channel_subtopic'].map((name) => ({ name, tbl_name: 'message_rows' })).concat(['senml_channel_name_time', 'senml_channel_publisher_time', 'senml_channel_time'].map((name) => ({ name, tbl_name: 'senml_rows' }))),
    );
  }, 120_000);
});
