import { describe, expect, it } from 'vitest';
import { PresenceCount } from './presence';

describe('PresenceCount', () => {
  it('reports a device online when the first front-end has it and offline when the last lets go', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('d', true); // CoAP: a request
    p.set('d', true); // MQTT: a connection
    p.set('d', false); // MQTT: its last connection closed — CoAP still has it
    expect(said).toEqual([['d', true]]);
    p.set('d', false); // CoAP: idle
    expect(said).toEqual([
      ['d', true],
      ['d', false],
    ]);
    expect(p.devices).toEqual([]);
  });

  it('the other way round: CoAP going idle leaves a device MQTT still holds online', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('d', true); // MQTT
    p.set('d', true); // CoAP
    p.set('d', false); // CoAP idle sweep
    expect(said).toEqual([['d', true]]);
    expect(p.devices).toEqual(['d']);
  });

  it('keeps devices apart and ignores an offline for a device it never had', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('a', false);
    p.set('a', true);
    p.set('b', true);
    p.set('a', false);
    expect(said).toEqual([
      ['a', true],
      ['b', true],
      ['a', false],
    ]);
  });
});
