/**
 * Access changes as the in-memory test platforms (MQTT's and CoAP's) report them: what
 * `Platform.accessVersion` answers and whom `Platform.onAccessChange` tells — the part of the real
 * platform client (bridge/platform/internal-api.ts) that follows the workers' access epochs.
 */
export class AccessChanges {
  /** A test moves it to say access changed without telling anyone (a change seen at the next packet). */
  version = 0;
  private readonly listeners = new Set<(org: string | undefined) => void>();

  /** Platform.onAccessChange (a bound function: the test platforms hand it out as theirs). */
  readonly listen = (listener: (org: string | undefined) => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Access in `org` changed (undefined: anywhere): the version moves and listeners are told. */
  change(org?: string): void {
    this.version++;
    for (const l of this.listeners) l(org);
  }
}
