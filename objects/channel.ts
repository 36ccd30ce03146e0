import { DurableObject } from 'cloudflare:workers';
export class ChannelActor extends DurableObject<Env> {}
