/**
 * A connection's subscriptions by topic filter — the active ones, or the stored ones a resume has
 * not reached yet — that keeps count of those with MQTT 5 No Local. Every PUBLISH asks whether the
 * connection has one (Connection.origin, [MQTT-3.8.3-3]): with the count that is O(1), not a walk of
 * up to `maxSubscriptions`. Every way a subscription comes or goes (SUBSCRIBE, a re-SUBSCRIBE with
 * other options, UNSUBSCRIBE, a channel's permission withdrawn, a resume) is a set or delete here,
 * so the count cannot drift from the entries.
 */
export class SubscriptionMap<V extends { readonly noLocal: boolean }> extends Map<string, V> {
  private local = 0;

  // Map's own constructor would call set() before `local` exists: entries are added after.
  constructor(entries?: Iterable<readonly [string, V]>) {
    super();
    if (entries) for (const [filter, sub] of entries) this.set(filter, sub);
  }

  /** How many entries have No Local. */
  get noLocal(): number {
    return this.local;
  }

  override set(filter: string, sub: V): this {
    if (this.get(filter)?.noLocal) this.local--;
    if (sub.noLocal) this.local++;
    return super.set(filter, sub);
  }

  override delete(filter: string): boolean {
    if (this.get(filter)?.noLocal) this.local--;
    return super.delete(filter);
  }

  override clear(): void {
    this.local = 0;
    super.clear();
  }
}
