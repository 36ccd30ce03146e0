/**
 * A device's presence on this bridge, across its front-ends. The workers keep one presence row per
 * (device, bridge), and both front-ends report under the bridge's one id: MQTT has a device from
 * its first connection to its last, CoAP from its first request until it has been idle
 * (docs/coap.md, "Presence"). Each front-end's reports are balanced (an offline only after its own
 * online), so they are counted here: the device is reported online when the first front-end has
 * it and offline when the last lets it go — neither overwrites the other.
 */
export class PresenceCount {
  private readonly held = new Map<string, number>();

  constructor(private readonly report: (deviceId: string, online: boolean) => void) {}

  set(deviceId: string, online: boolean): void {
    const n = this.held.get(deviceId) ?? 0;
    if (online) {
      this.held.set(deviceId, n + 1);
      if (n === 0) this.report(deviceId, true);
    } else if (n === 1) {
      this.held.delete(deviceId);
      this.report(deviceId, false);
    } else if (n > 1) this.held.set(deviceId, n - 1);
    // n === 0: nothing here had it online (its online was never counted); nothing to say.
  }

  /** Devices some front-end has (tests and stats). */
  get devices(): string[] {
    return [...this.held.keys()];
  }
}
