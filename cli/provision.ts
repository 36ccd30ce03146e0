import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { EdgefluxError, type Channel, type DeviceWithKey, type OrgScope } from '../sdk';
import type { Context } from './context';
import { LayoutError, parseLayout, type Layout } from './layout';
import { table } from './output';
import { readDocument } from './parse';
import { run } from './run';

/** Bulk creation, like the Mainflux provision tool: channels, devices (keys printed once), connections. */

const BULK = 100; // most items one bulk call takes
const PAIRS = 1000; // most channel × device pairs one connect call takes

export interface Provisioned {
  channels: { id: string; name: string }[];
  devices: { id: string; name: string; key: string; channels: string[] }[];
}

const chunks = <T>(items: T[], size: number): T[][] => Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

const LOOKUPS = 8; // existing channels looked up at once

/**
 * The channels a layout names that are not its own must exist in the org: each is looked up before
 * anything is created, so a mistyped id fails the run while it has made nothing. Only a 404 means
 * "no such channel"; any other refusal (a 403 without channels:read) fails the run as the API gave it.
 */
async function checkExisting(org: OrgScope, layout: Layout): Promise<void> {
  const own = new Set(layout.channels.map((c) => c.name));
  const ids = [...new Set(layout.groups.flatMap((g) => g.channels).filter((c) => !own.has(c)))];
  const missing = new Set<string>();
  for (const batch of chunks(ids, LOOKUPS)) {
    await Promise.all(
      batch.map((id) =>
        org.channels.get(id).catch((e: unknown) => {
          if (!(e instanceof EdgefluxError && e.status === 404)) throw e;
          missing.add(id);
        }),
      ),
    );
  }
  const at = layout.groups.findIndex((g) => g.channels.some((c) => missing.has(c)));
  if (at < 0) return;
  const names = layout.groups[at]!.channels.filter((c) => missing.has(c));
  throw new LayoutError(`layout: devices.${at}.channels: neither a channel of the layout nor an existing channel of this org: ${names.join(', ')}`);
}

/** Runs the layout step by step; `done` is what exists so far, so a failure can still report it. */
async function provision(org: OrgScope, layout: Layout, done: Provisioned, tick: (n: number) => void): Promise<void> {
  const byName = new Map<string, string>();
  for (const batch of chunks(layout.channels, BULK)) {
    const created: Channel[] = await org.channels.createMany(batch);
    for (const c of created) (byName.set(c.name, c.id), done.channels.push({ id: c.id, name: c.name }));
    tick(created.length);
  }
  for (const group of layout.groups) {
    const channelIds = group.channels.map((c) => byName.get(c) ?? c); // not in the layout: an existing channel id
    const made: DeviceWithKey[] = [];
    for (const batch of chunks(group.devices, BULK)) {
      const created = await org.devices.createMany(batch);
      for (const d of created) (made.push(d), done.devices.push({ id: d.id, name: d.name, key: d.key, channels: [] }));
      tick(created.length);
    }
    if (channelIds.length === 0) continue;
    for (const batch of chunks(made, Math.max(1, Math.floor(PAIRS / channelIds.length)))) {
      await org.connections.connect({ channel_ids: channelIds, device_ids: batch.map((d) => d.id), ...(group.types ? { types: group.types } : {}) });
      const ids = new Set(batch.map((d) => d.id));
      for (const d of done.devices) if (ids.has(d.id)) d.channels = channelIds;
      tick(batch.length * channelIds.length);
    }
  }
}

function report(ctx: Context, done: Provisioned): void {
  if (ctx.out.json || !process.stdout.isTTY) return void process.stdout.write(JSON.stringify(done, null, ctx.out.json ? 2 : 0) + '\n');
  process.stdout.write(`channels\n${table(done.channels, ['id', 'name'])}\n\ndevices (keys are shown only now: store them)\n${table(done.devices, ['id', 'name', 'key', 'channels'])}\n`);
}

export function provisionCommand(program: Command): void {
  program
    .command('provision <file>')
    .description("create channels, devices and connections from a JSON or YAML layout ('-' for stdin); prints device keys once")
    .action(
      run(async (ctx, file: string) => {
        const layout = parseLayout(readDocument(file));
        const org = ctx.client.org(ctx.org());
        await checkExisting(org, layout);
        const total = layout.channels.length + layout.groups.reduce((n, g) => n + g.devices.length * (1 + g.channels.length), 0);
        const bar = process.stdout.isTTY && process.stderr.isTTY ? new SingleBar({ stream: process.stderr, format: 'provisioning [{bar}] {value}/{total} {eta_formatted}', hideCursor: true }) : null;
        bar?.start(total, 0);
        const done: Provisioned = { channels: [], devices: [] };
        try {
          await provision(org, layout, done, (n) => bar?.increment(n));
        } catch (e) {
          bar?.stop();
          // What was created stays created: show it (with the keys) before failing.
          if (done.channels.length || done.devices.length) report(ctx, done);
          throw e;
        }
        bar?.stop();
        report(ctx, done);
      }),
    );
}
