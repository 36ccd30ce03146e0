import { Option, type Command } from 'commander';
import type { NameQuery, OrgScope, PageQuery, Statement } from '../sdk';
import type { Context } from './context';
import { show, showPage } from './output';
import { assignment, duration, integer, jsonObject, list, readDocument } from './parse';
import { run } from './run';

/** The management commands: one sub-command group per API resource. */

const paging = (cmd: Command) => cmd.option('--offset <n>', 'items to skip', integer).option('--limit <n>', 'page size (max 100)', integer);
const page = (o: PageQuery) => ({ offset: o.offset, limit: o.limit });
type Sorting = { sort?: 'created' | 'name' | 'last_seen'; order?: 'asc' | 'desc' };
type Filtered = Omit<NameQuery, 'sort'> & Sorting & { metadata?: Record<string, unknown> };
/** --sort and --order of a list; devices sort by last_seen too. */
const sorted = (keys: Sorting['sort'][]) => (c: Command) =>
  c.addOption(new Option('--sort <key>', `${keys.join(', ')} (default created)`).choices(keys as string[])).addOption(new Option('--order <dir>', 'asc (default) or desc').choices(['asc', 'desc']));
const BY_NAME = sorted(['created', 'name']);
const BY_DEVICE = sorted(['created', 'name', 'last_seen']);
const sortOf = (o: Sorting) => ({ sort: o.sort, order: o.order });
/** The name filter of the app and key lists. */
const named = (c: Command) => c.option('--name <text>', 'name contains (case-insensitive)');
/** The name and metadata filters of the device and channel lists (also of a channel's devices and a device's channels). */
const filtered = (c: Command) => named(c).option('--metadata <json>', 'metadata contains this JSON object', jsonObject);
const DEVICE_COLUMNS = ['id', 'name', 'online', 'metadata'];
const CHANNEL_COLUMNS = ['id', 'name', 'metadata'];

export function orgCommands(program: Command): void {
  const orgs = program.command('orgs').description('organizations (tenants) you belong to');
  paging(orgs.command('list').description('orgs you belong to')).action(run(async (ctx, o: PageQuery) => showPage(ctx.out, await ctx.client.orgs.list(page(o)), ['id', 'name', 'role'])));
  orgs
    .command('create <name>')
    .description('create an org (you become its owner; it becomes your default org)')
    .action(
      run(async (ctx, name: string) => {
        const org = await ctx.client.orgs.create(name);
        ctx.save({ org: org.id });
        show(ctx.out, org);
      }),
    );
  orgs.command('get [id]').description('one org (default: the current one)').action(run(async (ctx, id?: string) => show(ctx.out, await ctx.client.orgs.get(id ?? ctx.org()))));
  orgs.command('rename <id> <name>').action(run(async (ctx, id: string, name: string) => show(ctx.out, await ctx.client.orgs.rename(id, name))));
  orgs.command('delete <id>').description('delete an org and everything in it').action(run(async (ctx, id: string) => (await ctx.client.orgs.delete(id), show(ctx.out, { deleted: id }))));
  orgs
    .command('use <id>')
    .description('make an org the default for later commands')
    .action(run(async (ctx, id: string) => (ctx.save({ org: (await ctx.client.orgs.get(id)).id }), show(ctx.out, { org: id }))));

  const members = program.command('members').description('members of the current org');
  paging(members.command('list'))
    .option('--email <text>', 'email contains (case-insensitive)')
    .action(run(async (ctx, o: PageQuery & { email?: string }) => showPage(ctx.out, await ctx.client.org(ctx.org()).members.list({ ...page(o), email: o.email }), ['user_id', 'email', 'role'])));
  const role = new Option('--role <role>').choices(['owner', 'admin', 'member', 'viewer']);
  members
    .command('add <email>')
    .addOption(role.default('member'))
    .action(run(async (ctx, email: string, o: { role: 'member' }) => show(ctx.out, await ctx.client.org(ctx.org()).members.add({ email, role: o.role }))));
  members
    .command('role <user-id>')
    .addOption(new Option('--role <role>').choices(['owner', 'admin', 'member', 'viewer']).makeOptionMandatory())
    .action(run(async (ctx, user: string, o: { role: 'member' }) => (await ctx.client.org(ctx.org()).members.setRole(user, o.role), show(ctx.out, { user_id: user, role: o.role }))));
  members.command('remove <user-id>').action(run(async (ctx, user: string) => (await ctx.client.org(ctx.org()).members.remove(user), show(ctx.out, { removed: user }))));
}

/** devices and channels: the same commands over two resources. */
function entityCommands(program: Command, kind: 'devices' | 'channels'): void {
  const noun = kind.slice(0, -1);
  const columns = kind === 'devices' ? DEVICE_COLUMNS : CHANNEL_COLUMNS;
  // The calls used here have the same shape for both resources.
  const api = (ctx: Context) => ctx.client.org(ctx.org())[kind] as OrgScope['channels'];
  const group = program.command(kind).description(kind === 'devices' ? 'devices (things): each has a secret key' : 'channels: named message streams');
  (kind === 'devices' ? BY_DEVICE : BY_NAME)(filtered(paging(group.command('list').description(`${kind} of the current org`)))).action(
    // The devices' call takes last_seen too (the shared signature is the channels').
    run(async (ctx, o: Filtered) => showPage(ctx.out, await api(ctx).list({ ...page(o), ...(sortOf(o) as NameQuery), name: o.name, metadata: o.metadata }), columns)),
  );
  group
    .command('create <name...>')
    .description(`create one or more ${kind}${kind === 'devices' ? ' (keys are shown once)' : ''}`)
    .option('--metadata <json>', 'metadata (a JSON object)', jsonObject)
    .action(
      run(async (ctx, names: string[], o: { metadata?: Record<string, unknown> }) => {
        const items = await api(ctx).createMany(names.map((name) => ({ name, metadata: o.metadata })));
        show(ctx.out, names.length === 1 ? items[0] : items, kind === 'devices' ? ['id', 'name', 'key'] : CHANNEL_COLUMNS);
      }),
    );
  group.command('get <id>').action(run(async (ctx, id: string) => show(ctx.out, await api(ctx).get(id))));
  group
    .command('update <id>')
    .option('--name <name>')
    .option('--metadata <json>', 'replaces the metadata', jsonObject)
    .action(run(async (ctx, id: string, o: { name?: string; metadata?: Record<string, unknown> }) => show(ctx.out, await api(ctx).update(id, o))));
  group.command('delete <id...>').action(run(async (ctx, ids: string[]) => show(ctx.out, { deleted: await Promise.all(ids.map(async (id) => (await api(ctx).delete(id), id))) })));
  if (kind === 'devices') {
    group.command('rotate-key <id>').description('new device key (the old one stops working at once)').action(run(async (ctx, id: string) => show(ctx.out, await ctx.client.org(ctx.org()).devices.rotateKey(id))));
    BY_NAME(filtered(paging(group.command('channels <id>').description('channels the device is connected to')))).action(
      run(async (ctx, id: string, o: Filtered) => showPage(ctx.out, await ctx.client.org(ctx.org()).devices.channels(id, { ...page(o), ...(sortOf(o) as NameQuery), name: o.name, metadata: o.metadata }), ['id', 'name', 'types'])),
    );
  } else {
    BY_DEVICE(filtered(paging(group.command('devices <id>').description('devices connected to the channel')))).action(
      run(async (ctx, id: string, o: Filtered) => showPage(ctx.out, await ctx.client.org(ctx.org()).channels.devices(id, { ...page(o), ...sortOf(o), name: o.name, metadata: o.metadata }), ['id', 'name', 'types'])),
    );
    group
      .command('limits <id>')
      .description("show the channel's limits, or change some: --set maxPayloadBytes=4096")
      .option('--set <key=value...>', 'a setting to change: numbers, rates as JSON, text as is (defaultContentType=application/senml+json)', assignment)
      .action(
        run(async (ctx, id: string, o: { set?: [string, unknown][] }) => {
          const channels = ctx.client.org(ctx.org()).channels;
          if (!o.set) return show(ctx.out, await channels.limits(id));
          show(ctx.out, await channels.setLimits(id, Object.fromEntries(o.set)));
        }),
      );
  }
}

export function thingCommands(program: Command): void {
  entityCommands(program, 'devices');
  entityCommands(program, 'channels');
  const types = new Option('--types <types>', 'publish, subscribe or both').argParser(list);
  program
    .command('connect')
    .description('connect devices to channels (every pair)')
    .requiredOption('-c, --channel <ids>', 'channel ids (repeat or comma-separate)', list)
    .requiredOption('-d, --device <ids>', 'device ids (repeat or comma-separate)', list)
    .addOption(types)
    .action(
      run(async (ctx, o: { channel: string[]; device: string[]; types?: ('publish' | 'subscribe')[] }) => {
        const conns = await ctx.client.org(ctx.org()).connections.connect({ channel_ids: o.channel, device_ids: o.device, ...(o.types ? { types: o.types } : {}) });
        show(ctx.out, conns, ['channel_id', 'device_id', 'types']);
      }),
    );
  program
    .command('disconnect')
    .description('disconnect devices from channels (every pair)')
    .requiredOption('-c, --channel <ids>', 'channel ids', list)
    .requiredOption('-d, --device <ids>', 'device ids', list)
    .action(
      run(async (ctx, o: { channel: string[]; device: string[] }) => {
        await ctx.client.org(ctx.org()).connections.disconnect({ channel_ids: o.channel, device_ids: o.device });
        show(ctx.out, { disconnected: o.channel.flatMap((c) => o.device.map((d) => ({ channel_id: c, device_id: d }))) });
      }),
    );
}

export function accessCommands(program: Command): void {
  const apps = program.command('apps').description('third-party apps (OAuth2 client credentials)');
  BY_NAME(named(paging(apps.command('list')))).action(run(async (ctx, o: NameQuery) => showPage(ctx.out, await ctx.client.org(ctx.org()).apps.list({ ...page(o), sort: o.sort, order: o.order, name: o.name }), ['id', 'name', 'client_id', 'scopes'])));
  apps
    .command('create <name>')
    .description('register an app (its client secret is shown once)')
    .requiredOption('--scopes <scopes>', 'e.g. devices:read,messages:subscribe', list)
    .action(run(async (ctx, name: string, o: { scopes: string[] }) => show(ctx.out, await ctx.client.org(ctx.org()).apps.create({ name, scopes: o.scopes }))));
  apps.command('get <id>').action(run(async (ctx, id: string) => show(ctx.out, await ctx.client.org(ctx.org()).apps.get(id))));
  apps
    .command('update <id>')
    .option('--name <name>')
    .option('--scopes <scopes>', 'replaces the scopes', list)
    .action(run(async (ctx, id: string, o: { name?: string; scopes?: string[] }) => show(ctx.out, await ctx.client.org(ctx.org()).apps.update(id, o))));
  apps
    .command('rotate-secret <id>')
    .description('a new client secret (shown once); the old one stops working at once')
    .option('--revoke-issued', 'also revoke every API key the app issued and end its access tokens at once (after a leak)')
    .action(run(async (ctx, id: string, o: { revokeIssued?: boolean }) => show(ctx.out, await ctx.client.org(ctx.org()).apps.rotateSecret(id, o.revokeIssued ? { revokeIssued: true } : undefined))));
  apps.command('delete <id>').action(run(async (ctx, id: string) => (await ctx.client.org(ctx.org()).apps.delete(id), show(ctx.out, { deleted: id }))));

  const keys = program.command('keys').description('API keys: scoped, expiring, revocable');
  keys
    .command('issue <name>')
    .description('issue an API key (shown once)')
    .requiredOption('--scopes <scopes>', 'e.g. devices:read,messages:subscribe', list)
    .option('--expires-in <duration>', 'e.g. 3600, 12h, 30d (default: never)', duration)
    .action(
      run(async (ctx, name: string, o: { scopes: string[]; expiresIn?: number }) => {
        show(ctx.out, await ctx.client.org(ctx.org()).keys.issue({ name, scopes: o.scopes, ...(o.expiresIn ? { expires_in: o.expiresIn } : {}) }), ['id', 'name', 'key']);
      }),
    );
  BY_NAME(named(paging(keys.command('list')))).action(run(async (ctx, o: NameQuery) => showPage(ctx.out, await ctx.client.org(ctx.org()).keys.list({ ...page(o), sort: o.sort, order: o.order, name: o.name }), ['id', 'name', 'scopes', 'expires_at', 'revoked_at'])));
  keys.command('get <id>').action(run(async (ctx, id: string) => show(ctx.out, await ctx.client.org(ctx.org()).keys.get(id))));
  keys.command('revoke <id>').action(run(async (ctx, id: string) => (await ctx.client.org(ctx.org()).keys.revoke(id), show(ctx.out, { revoked: id }))));

  const policies = program.command('policies').description('IAM-style policies: allow/deny statements attached to members, devices, apps, keys');
  paging(policies.command('list')).action(run(async (ctx, o: PageQuery) => showPage(ctx.out, await ctx.client.org(ctx.org()).policies.list(page(o)), ['id', 'name', 'statements'])));
  policies
    .command('create <name>')
    .description('a policy from --allow/--deny (ACTIONS@RESOURCES, e.g. devices:delete@devices/*) or --file')
    .option('--allow <spec>', 'actions@resources, comma-separated lists (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .option('--deny <spec>', 'actions@resources (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .option('-f, --file <file>', 'JSON or YAML: a list of statements, or {statements: [...]}')
    .action(
      run(async (ctx, name: string, o: { allow?: string[]; deny?: string[]; file?: string }) => {
        show(ctx.out, await ctx.client.org(ctx.org()).policies.create({ name, statements: statements(o) }));
      }),
    );
  policies.command('get <id>').action(run(async (ctx, id: string) => show(ctx.out, await ctx.client.org(ctx.org()).policies.get(id))));
  policies.command('delete <id>').action(run(async (ctx, id: string) => (await ctx.client.org(ctx.org()).policies.delete(id), show(ctx.out, { deleted: id }))));
  const principal = new Option('--type <type>', 'who: member (user id), device, app or key').choices(['member', 'device', 'app', 'key']).makeOptionMandatory();
  policies
    .command('attach <policy-id> <principal-id>')
    .addOption(principal)
    .action(run(async (ctx, id: string, pid: string, o: { type: 'device' }) => show(ctx.out, await ctx.client.org(ctx.org()).policies.attach(id, { principal_type: o.type, principal_id: pid }))));
  policies
    .command('detach <policy-id> <principal-id>')
    .addOption(new Option('--type <type>').choices(['member', 'device', 'app', 'key']).makeOptionMandatory())
    .action(run(async (ctx, id: string, pid: string, o: { type: 'device' }) => (await ctx.client.org(ctx.org()).policies.detach(id, o.type, pid), show(ctx.out, { detached: pid }))));
  paging(policies.command('attachments <policy-id>')).action(run(async (ctx, id: string, o: PageQuery) => showPage(ctx.out, await ctx.client.org(ctx.org()).policies.attachments(id, page(o)))));
}

function statements(o: { allow?: string[]; deny?: string[]; file?: string }): Statement[] {
  if (o.file) {
    const doc = readDocument(o.file) as { statements?: unknown } | unknown[];
    return (Array.isArray(doc) ? doc : (doc as { statements?: unknown }).statements) as Statement[]; // the API validates them
  }
  const one = (effect: 'allow' | 'deny', spec: string): Statement => {
    const at = spec.indexOf('@');
    return { effect, actions: list(at < 0 ? spec : spec.slice(0, at)), resources: at < 0 ? ['*'] : list(spec.slice(at + 1)) };
  };
  const out = [...(o.allow ?? []).map((s) => one('allow', s)), ...(o.deny ?? []).map((s) => one('deny', s))];
  if (out.length === 0) throw new Error('give --allow, --deny or --file');
  return out;
}
