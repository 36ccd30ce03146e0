/**
 * Where a platform listening on every interface (`EDGEFLUX_HOST=0.0.0.0` or `::`) can be reached:
 * the banner's URLs say 0.0.0.0, which is where it listens, not an address to type (browsers may
 * refuse it; another machine cannot use it). This names the machine's own addresses instead.
 */
import type { NetworkInterfaceInfo } from 'node:os';

/** The addresses of `interfaces` a client could dial for `host`; empty when `host` is one address already. */
export function reachableAddresses(host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string[] {
  const any4 = host === '0.0.0.0';
  const any6 = host === '::' || host === '[::]';
  if (!any4 && !any6) return [];
  const out: string[] = [];
  for (const infos of Object.values(interfaces)) {
    for (const i of infos ?? []) {
      if (i.internal) continue;
      // Link-local addresses (169.254/16, fe80::/10) are not ones another device would be told to use.
      if (i.family === 'IPv4' && !i.address.startsWith('169.254.')) out.push(i.address);
      // `::` listens on IPv4 too (dual stack); link-local IPv6 needs a zone a URL rarely carries.
      else if (any6 && i.family === 'IPv6' && !i.address.startsWith('fe80:')) out.push(`[${i.address}]`);
    }
  }
  return [...new Set(out)];
}
