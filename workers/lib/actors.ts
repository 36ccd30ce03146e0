/** The channel actor of a channel (one Durable Object per channel id). */
export const channelActor = (env: Env, channel: string) => env.CHANNELS.get(env.CHANNELS.idFromName(channel));

/** The one actor that drives deleted channels' purges (objects/purger/). */
export const channelPurger = (env: Env) => env.PURGER.get(env.PURGER.idFromName('channel-purger'));

/**
 * Purges were recorded (D1 `channel_purges`): the purger starts on them now. If it cannot be told,
 * they wait for its next alarm or the cron trigger's kick (workers/index.ts); nothing is lost.
 */
export async function startPurges(env: Env): Promise<void> {
  try {
    await channelPurger(env).kick();
  } catch (e) {
    console.error('channel purger not told of new purges; its next alarm or the cron trigger starts them', e);
  }
}

/** More channels than this with live subscribers in one org: the rest notice at their next delivery (access.ts). */
const MAX_RECHECKED = 500;

/**
 * After a write that changed an org's access: the actors of its channels with live WebSocket
 * subscribers (D1's `live_channels`, objects/channel/live.ts) ask again about them now, so a
 * revoked subscriber on a quiet channel is closed at once rather than at its next delivery.
 */
export async function recheckLiveChannels(env: Env, org: string): Promise<void> {
  const { results } = await env.DB.prepare('SELECT channel_id FROM live_channels WHERE org_id = ? LIMIT ?').bind(org, MAX_RECHECKED).all<{ channel_id: string }>();
  const told = await Promise.allSettled(results.map((r) => channelActor(env, r.channel_id).recheckSubscribers(r.channel_id)));
  const failed = told.filter((t) => t.status === 'rejected').length;
  if (failed > 0) console.error(`org ${org}: ${failed} of ${told.length} channels with subscribers not told of an access change; they ask again at their next delivery`);
}
