import { z } from 'zod';

/**
 * A provisioning layout (`edgeflux provision FILE`), as in the Mainflux provision tool: channels,
 * and devices connected to them by name. `count` stamps out numbered copies: `{n}` in the name
 * becomes 1..count (without `{n}`, `-n` is appended).
 *
 *   channels:
 *     - { name: telemetry }
 *   devices:
 *     - { name: "thermo-{n}", count: 20, metadata: { room: lab }, channels: [telemetry] }
 */
const MAX_ITEMS = 10_000;
const Metadata = z.record(z.string(), z.unknown());
const Name = z.string().trim().min(1).max(200);
const Count = z.number().int().min(1).max(MAX_ITEMS);
const ChannelSpec = z.strictObject({ name: Name, metadata: Metadata.optional(), count: Count.optional() });
const DeviceSpec = z.strictObject({
  name: Name,
  metadata: Metadata.optional(),
  count: Count.optional(),
  /** Channel names from this layout, or ids of existing channels. */
  channels: z.array(z.string().min(1)).max(1000).default([]),
  types: z.array(z.enum(['publish', 'subscribe'])).min(1).max(2).optional(),
});
const LayoutSchema = z.strictObject({ channels: z.array(ChannelSpec).default([]), devices: z.array(DeviceSpec).default([]) });

export interface Item {
  name: string;
  metadata?: Record<string, unknown>;
}
/** One device entry after expansion: its devices, the channels (names or ids) and types they get. */
export interface DeviceGroup {
  devices: Item[];
  channels: string[];
  types?: ('publish' | 'subscribe')[];
}
export interface Layout {
  channels: Item[];
  groups: DeviceGroup[];
}

export class LayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutError';
  }
}

function expand(spec: { name: string; metadata?: Record<string, unknown>; count?: number }): Item[] {
  const meta = spec.metadata ? { metadata: spec.metadata } : {};
  if (spec.count === undefined) return [{ name: spec.name, ...meta }];
  const name = (n: number) => (spec.name.includes('{n}') ? spec.name.replaceAll('{n}', String(n)) : `${spec.name}-${n}`);
  return Array.from({ length: spec.count }, (_, i) => ({ name: name(i + 1), ...meta }));
}

/** Parses an untrusted document (from JSON or YAML) into a layout, or throws a LayoutError naming the problem. */
export function parseLayout(doc: unknown): Layout {
  const r = LayoutSchema.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new LayoutError(`layout: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  const channels = r.data.channels.flatMap(expand);
  const groups = r.data.devices.map((d) => ({ devices: expand(d), channels: [...new Set(d.channels)], ...(d.types ? { types: d.types } : {}) }));
  const total = channels.length + groups.reduce((n, g) => n + g.devices.length, 0);
  if (total > MAX_ITEMS) throw new LayoutError(`layout: ${total} devices and channels; at most ${MAX_ITEMS} per run`);
  const seen = new Set<string>();
  for (const c of channels) {
    if (seen.has(c.name)) throw new LayoutError(`layout: channel name "${c.name}" appears twice, so devices cannot refer to it`);
    seen.add(c.name);
  }
  if (total === 0) throw new LayoutError('layout: no channels and no devices');
  return { channels, groups };
}
