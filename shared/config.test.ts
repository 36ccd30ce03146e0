import { describe, expect, it } from 'vitest';
import { loadConfig, urlHost } from './config';

describe('urlHost', () => {
  it('puts IPv6 literals in brackets and leaves names and IPv4 as they are', () => {
    expect(urlHost('::')).toBe('[::]');
    expect(urlHost('::1')).toBe('[::1]');
    expect(urlHost('fd00::2')).toBe('[fd00::2]');
    expect(urlHost('[::1]')).toBe('[::1]');
    expect(urlHost('0.0.0.0')).toBe('0.0.0.0');
    expect(urlHost('127.0.0.1')).toBe('127.0.0.1');
    expect(urlHost('localhost')).toBe('localhost');
  });

  it("gives a bridge on an IPv6 EDGEFLUX_HOST a worker URL that parses, on that host's port", () => {
    const url = new URL(loadConfig({ EDGEFLUX_HOST: '::', EDGEFLUX_HTTP_PORT: '8788' }).workerUrl);
    expect(url.hostname).toBe('[::]');
    expect(url.port).toBe('8788');
  });
});
