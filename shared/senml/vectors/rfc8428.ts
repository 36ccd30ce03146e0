/**
 * Every example pack of RFC 8428 §1, §2, §5.1 and §6, with the resolved records it must decode to
 * (RFC 8428 §4.6). Times "now" resolve against NOW. §5.1.4 is the RFC's own resolved form of §5.1.3.
 */
import type { SenmlRecord } from '../types';

export const NOW = 1_700_000_000;

export interface RfcExample {
  section: string;
  title: string;
  /** The pack exactly as printed in the RFC. */
  json: string;
  expected: SenmlRecord[];
}

const OW = 'urn:dev:ow:10e2073a01080063';
const OW6 = 'urn:dev:ow:10e2073a0108006:';

/** §5.1.4, the resolved form of §5.1.3, as printed in the RFC. */
export const RESOLVED_5_1_4 = `[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,"v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,"v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,"v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,"v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,"v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,"v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,"v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,"v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,"v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,"v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,"v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,"v":60.07967}
]`;

const resolved514: SenmlRecord[] = [
  [1320067464, '%RH', 20], [1320067464, 'lon', 24.30621], [1320067464, 'lat', 60.07965],
  [1320067524, '%RH', 20.3], [1320067524, 'lon', 24.30622], [1320067524, 'lat', 60.07965],
  [1320067584, '%RH', 20.7], [1320067584, 'lon', 24.30623], [1320067584, 'lat', 60.07966],
  [1320067614, '%EL', 98],
  [1320067644, '%RH', 21.2], [1320067644, 'lon', 24.30628], [1320067644, 'lat', 60.07967],
].map(([time, unit, value]) => ({ name: OW, time: time as number, unit: unit as string, value: value as number }));

const current512 = (time: number, value: number): SenmlRecord => ({ name: `${OW6}current`, time, unit: 'A', value });

export const RFC_EXAMPLES: RfcExample[] = [
  {
    section: '§1',
    title: 'overview, one temperature',
    json: `[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
    expected: [{ name: OW, time: NOW, unit: 'Cel', value: 23.1 }],
  },
  {
    section: '§2',
    title: 'two measurements at absolute times',
    json: `[
      {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020076e+09,"v":23.5},
      {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020091e+09,"v":23.6}]`,
    expected: [
      { name: OW, time: 1276020076, unit: 'Cel', value: 23.5 },
      { name: OW, time: 1276020091, unit: 'Cel', value: 23.6 },
    ],
  },
  {
    section: '§2',
    title: 'the same with a base name',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063","u":"Cel","t":1.276020076e+09,"v":23.5},
      {"u":"Cel","t":1.276020091e+09,"v":23.6}]`,
    expected: [
      { name: OW, time: 1276020076, unit: 'Cel', value: 23.5 },
      { name: OW, time: 1276020091, unit: 'Cel', value: 23.6 },
    ],
  },
  {
    section: '§5.1.1',
    title: 'single data point',
    json: `[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`,
    expected: [{ name: OW, time: NOW, unit: 'Cel', value: 23.1 }],
  },
  {
    section: '§5.1.2',
    title: 'multiple data points, now',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
      {"n":"current","u":"A","v":1.2}]`,
    expected: [
      { name: `${OW}:voltage`, time: NOW, unit: 'V', value: 120.1 },
      { name: `${OW}:current`, time: NOW, unit: 'A', value: 1.2 },
    ],
  },
  {
    section: '§5.1.2',
    title: 'multiple data points, base time, base unit, bver 5 (same pack as the §6 CBOR dump)',
    json: `[
      {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
       "bu":"A","bver":5,
       "n":"voltage","u":"V","v":120.1},
      {"n":"current","t":-5,"v":1.2},
      {"n":"current","t":-4,"v":1.3},
      {"n":"current","t":-3,"v":1.4},
      {"n":"current","t":-2,"v":1.5},
      {"n":"current","t":-1,"v":1.6},
      {"n":"current","v":1.7}]`,
    // Resolved records are in chronological order (RFC 8428 §4.6); equal times keep pack order.
    expected: [
      current512(1276020071.001, 1.2), current512(1276020072.001, 1.3), current512(1276020073.001, 1.4),
      current512(1276020074.001, 1.5), current512(1276020075.001, 1.6),
      { name: `${OW6}voltage`, time: 1276020076.001, unit: 'V', value: 120.1 },
      current512(1276020076.001, 1.7),
    ],
  },
  {
    section: '§5.1.2',
    title: 'SensML stream (the records printed before "...")',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
       "bu":"%RH","v":21.2},
      {"t":10,"v":21.3},
      {"t":20,"v":21.4},
      {"t":30,"v":21.4},
      {"t":40,"v":21.5},
      {"t":50,"v":21.5},
      {"t":60,"v":21.5},
      {"t":70,"v":21.6},
      {"t":80,"v":21.7}]`,
    expected: [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7]
      .map((value, k) => ({ name: OW, time: 1320067464 + 10 * k, unit: '%RH', value })),
  },
  {
    section: '§5.1.3',
    title: 'multiple measurements (resolves to §5.1.4)',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
       "bu":"%RH","v":20},
      {"u":"lon","v":24.30621},
      {"u":"lat","v":60.07965},
      {"t":60,"v":20.3},
      {"u":"lon","t":60,"v":24.30622},
      {"u":"lat","t":60,"v":60.07965},
      {"t":120,"v":20.7},
      {"u":"lon","t":120,"v":24.30623},
      {"u":"lat","t":120,"v":60.07966},
      {"u":"%EL","t":150,"v":98},
      {"t":180,"v":21.2},
      {"u":"lon","t":180,"v":24.30628},
      {"u":"lat","t":180,"v":60.07967}]`,
    expected: resolved514,
  },
  { section: '§5.1.4', title: 'resolved data (already resolved)', json: RESOLVED_5_1_4, expected: resolved514 },
  {
    section: '§5.1.5',
    title: 'multiple data types',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
      {"n":"label","vs":"Machine Room"},
      {"n":"open","vb":false},
      {"n":"nfv-reader","vd":"aGkgCg"}]`,
    expected: [
      { name: `${OW}:temp`, time: NOW, unit: 'Cel', value: 23.1 },
      { name: `${OW}:label`, time: NOW, stringValue: 'Machine Room' },
      { name: `${OW}:open`, time: NOW, boolValue: false },
      { name: `${OW}:nfv-reader`, time: NOW, dataValue: 'aGkgCg' },
    ],
  },
  {
    section: '§5.1.6',
    title: 'collection of resources (last record: bn of the 3rd, bt of the 1st)',
    json: `[
      {"bn":"2001:db8::2/","bt":1.320078429e+09,
       "n":"temperature","u":"Cel","v":25.2},
      {"n":"humidity","u":"%RH","v":30},
      {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
      {"n":"humidity","u":"%RH","v":67}]`,
    expected: [
      { name: '2001:db8::2/temperature', time: 1320078429, unit: 'Cel', value: 25.2 },
      { name: '2001:db8::2/humidity', time: 1320078429, unit: '%RH', value: 30 },
      { name: '2001:db8::1/temperature', time: 1320078429, unit: 'Cel', value: 12.3 },
      { name: '2001:db8::1/humidity', time: 1320078429, unit: '%RH', value: 67 },
    ],
  },
  {
    section: '§5.1.7',
    title: 'setting an actuator (first record holds only a base name)',
    json: `[
      {"bn":"urn:dev:ow:10e2073a01080063:"},
      {"n":"temp","u":"Cel","v":23.1},
      {"n":"heat","u":"/","v":1},
      {"n":"fan","u":"/","v":0}]`,
    expected: [
      { name: `${OW}:temp`, time: NOW, unit: 'Cel', value: 23.1 },
      { name: `${OW}:heat`, time: NOW, unit: '/', value: 1 },
      { name: `${OW}:fan`, time: NOW, unit: '/', value: 0 },
    ],
  },
  {
    section: '§5.1.7',
    title: 'two lights turned on',
    json: `[
      {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":1},
      {"n":"2001:db8::4","v":1}]`,
    expected: [
      { name: '2001:db8::3', time: 1320078429, unit: '/', value: 1 },
      { name: '2001:db8::4', time: 1320078429, unit: '/', value: 1 },
    ],
  },
  {
    section: '§5.1.7',
    title: 'two lights dimmed now, off 100 ms later',
    json: `[
      {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
      {"n":"2001:db8::4","v":0.5},
      {"n":"2001:db8::3","t":0.1,"v":0},
      {"n":"2001:db8::4","t":0.1,"v":0}]`,
    expected: [
      { name: '2001:db8::3', time: 1320078429, unit: '/', value: 0.5 },
      { name: '2001:db8::4', time: 1320078429, unit: '/', value: 0.5 },
      { name: '2001:db8::3', time: 1320078429.1, unit: '/', value: 0 },
      { name: '2001:db8::4', time: 1320078429.1, unit: '/', value: 0 },
    ],
  },
];

/** RFC 8428 §6: the CBOR dump of the second §5.1.2 pack, byte for byte. */
export const RFC_CBOR_DUMP_HEX = `
  87 a7 21 78 1b 75 72 6e 3a 64 65 76 3a 6f 77 3a
  31 30 65 32 30 37 33 61 30 31 30 38 30 30 36 3a
  22 fb 41 d3 03 a1 5b 00 10 62 23 61 41 20 05 00
  67 76 6f 6c 74 61 67 65 01 61 56 02 fb 40 5e 06
  66 66 66 66 66 a3 00 67 63 75 72 72 65 6e 74 06
  24 02 fb 3f f3 33 33 33 33 33 33 a3 00 67 63 75
  72 72 65 6e 74 06 23 02 fb 3f f4 cc cc cc cc cc
  cd a3 00 67 63 75 72 72 65 6e 74 06 22 02 fb 3f
  f6 66 66 66 66 66 66 a3 00 67 63 75 72 72 65 6e
  74 06 21 02 f9 3e 00 a3 00 67 63 75 72 72 65 6e
  74 06 20 02 fb 3f f9 99 99 99 99 99 9a a3 00 67
  63 75 72 72 65 6e 74 06 00 02 fb 3f fb 33 33 33
  33 33 33`;
