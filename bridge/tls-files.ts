/**
 * MQTT over TLS's certificate and key, read and checked before anything listens: a path that cannot
 * be read, or files that are not a PEM certificate and its key, are said with the variables that
 * name them — at start-up (`npm start` checks them before migrations, the bridge before its first
 * listener), not after the other listeners are up.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { PlatformConfig } from '../shared/config';

function pemFile(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${variable}=${path} cannot be read: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The cert and key when MQTT over TLS is on (both variables set), else null; throws naming the variables otherwise. */
export function tlsFiles(cfg: Pick<PlatformConfig, 'mqttTlsCert' | 'mqttTlsKey'>): { cert: Buffer; key: Buffer } | null {
  if (!cfg.mqttTlsCert || !cfg.mqttTlsKey) return null;
  const cert = pemFile('EDGEFLUX_MQTT_TLS_CERT', cfg.mqttTlsCert);
  const key = pemFile('EDGEFLUX_MQTT_TLS_KEY', cfg.mqttTlsKey);
  try {
    // The key must be the certificate's: Deno's createSecureContext takes anything (Node and Bun refuse).
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error("the key is not the certificate's");
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`EDGEFLUX_MQTT_TLS_CERT=${cfg.mqttTlsCert} and EDGEFLUX_MQTT_TLS_KEY=${cfg.mqttTlsKey} are not a PEM certificate and its private key: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { cert, key };
}
