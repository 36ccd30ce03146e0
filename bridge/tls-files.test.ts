import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsFiles } from './tls-files';

/** Two self-signed certificates with their keys, made by openssl (as a user would make them). */
let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeflux-tls-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pair = (name: string) => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
};

describe('tlsFiles', () => {
  let a: ReturnType<typeof pair>;
  let b: ReturnType<typeof pair>;
  beforeAll(() => {
    a = pair('a');
    b = pair('b');
  });
  it('reads a certificate and its key; off when either variable is unset', () => {
    expect(tlsFiles({ mqttTlsCert: a.cert, mqttTlsKey: a.key })?.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(tlsFiles({ mqttTlsCert: '', mqttTlsKey: '' })).toBeNull();
  });
  it("refuses a key that is not the certificate's, or the two swapped, naming both variables", () => {
    expect(() => tlsFiles({ mqttTlsCert: a.cert, mqttTlsKey: b.key })).toThrow(`EDGEFLUX_MQTT_TLS_CERT=${a.cert} and EDGEFLUX_MQTT_TLS_KEY=${b.key} are not a PEM certificate and its private key`);
    expect(() => tlsFiles({ mqttTlsCert: a.key, mqttTlsKey: a.cert })).toThrow('are not a PEM certificate and its private key');
  });
});
