import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { LayoutError, parseLayout } from '../../cli/layout';

/** The provisioning layout parser (cli/layout.ts): untrusted JSON/YAML in, a layout or a LayoutError out. */
describe('provision layout', () => {
  it('expands counts, keeps metadata, channels and types', () => {
    const l = parseLayout(parseYaml('channels: [{name: t, metadata: {a: 1}}]\ndevices:\n  - {name: "s-{n}", count: 2, channels: [t, t], types: [publish]}\n  - {name: pump, count: 2}\n  - {name: one}\n'));
    expect(l.channels).toEqual([{ name: 't', metadata: { a: 1 } }]);
    expect(l.groups).toEqual([
      { devices: [{ name: 's-1' }, { name: 's-2' }], channels: ['t'], types: ['publish'] },
      { devices: [{ name: 'pump-1' }, { name: 'pump-2' }], channels: [] },
      { devices: [{ name: 'one' }], channels: [] },
    ]);
  });

  it.each([
    [null, '(top)'],
    [{}, 'no channels and no devices'],
    [{ devices: [{ name: 'x', colour: 'red' }] }, 'colour'],
    [{ devices: [{ name: 'x', count: 0 }] }, 'devices.0.count'],
    [{ devices: [{ name: 'x', count: 20_000 }] }, 'devices.0.count'],
    [{ channels: [{ name: 'a' }, { name: 'a' }] }, 'appears twice'],
    [{ devices: [{ name: 'x', types: ['read'] }] }, 'devices.0.types.0'],
    [{ devices: [{ name: 'x', count: 6000 }, { name: 'y', count: 6000 }] }, 'at most 10000'],
  ])('refuses %j naming the problem', (doc, message) => {
    expect(() => parseLayout(doc)).toThrow(LayoutError);
    expect(() => parseLayout(doc)).toThrow(message);
  });

  it('never fails with anything but a LayoutError on random documents', () => {
    const atoms = [null, true, 0, -1, 1.5, 1e9, '', 'x', '{n}', [], {}];
    const keys = ['channels', 'devices', 'name', 'count', 'metadata', 'channels', 'types', 'publish', '__proto__', 'x'];
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const value = (depth: number): unknown => {
      const k = rand(depth > 3 ? 1 : 3);
      if (k === 0) return atoms[rand(atoms.length)];
      if (k === 1) return Array.from({ length: rand(4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: rand(4) }, () => [keys[rand(keys.length)]!, value(depth + 1)]));
    };
    for (let i = 0; i < 5000; i++) {
      const doc = value(0);
      try {
        const l = parseLayout(doc);
        expect(l.channels.length + l.groups.length).toBeGreaterThan(0);
      } catch (e) {
        if (!(e instanceof LayoutError)) throw new Error(`${String(e)} for ${JSON.stringify(doc)}`);
      }
    }
  });
});
