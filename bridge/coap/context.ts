/** What every resource handler of the CoAP server shares. */
import type { Platform } from '../platform/types';
import type { Auth } from './auth';
import type { Representations, Uploads } from './blockwise';
import type { CoapLimits, RateLimiter } from './limits';
import type { MessageLayer } from './message-layer';
import type { Clock, Log } from './types';

export interface Context {
  platform: Platform;
  limits: CoapLimits;
  clock: Clock;
  log: Log;
  layer: MessageLayer;
  auth: Auth;
  uploads: Uploads;
  reps: Representations;
  rate: RateLimiter;
}
