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

describe('MQTT over TLS files', () => {
  // One alone left TLS off with nothing said: a misspelt key variable, and no TLS listener.
  it('takes both or neither, and names the one missing', () => {
    expect(loadConfig({}).mqttTlsCert).toBeUndefined();
    expect(loadConfig({ EDGEFLUX_MQTT_TLS_CERT: 'c.pem', EDGEFLUX_MQTT_TLS_KEY: 'k.pem' })).toMatchObject({ mqttTlsCert: 'c.pem', mqttTlsKey: 'k.pem' });
    expect(() => loadConfig({ EDGEFLUX_MQTT_TLS_CERT: 'c.pem' })).toThrow('EDGEFLUX_MQTT_TLS_CERT is set but EDGEFLUX_MQTT_TLS_KEY is not: MQTT over TLS needs both PEM files (or neither, for no TLS)');
    expect(() => loadConfig({ EDGEFLUX_MQTT_TLS_KEY: 'k.pem', EDGEFLUX_MQTT_TLS_CERT: '' })).toThrow('EDGEFLUX_MQTT_TLS_KEY is set but EDGEFLUX_MQTT_TLS_CERT is not');
  });
});
