import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { ChannelLimits } from '../../../sdk';
import { EdgefluxError } from '../../../sdk';
import { mayManage, useRole } from '../access';
import { COMMON_TYPES, NUMBERS, OTHER, SETTINGS, draftOf, patchOf, settingNamed, type Draft } from '../limits';
import { api } from '../session';
import { Problem, Scroll, isNotFound, useAction, useLoad } from '../ui';
import { ChannelHeader } from './live';

/** A channel's settings: everyone sees the effective values; owners and admins change them. */
export function ChannelSettingsPage({ org, channel }: { org: string; channel: string }) {
  const loaded = useLoad(() => api.org(org).channels.limits(channel), [org, channel]);
  // What the API last answered: the load, then each save's effective values.
  const [saved, setSaved] = useState<ChannelLimits | null>(null);
  const limits = saved ?? loaded.data;
  const mayChange = mayManage(useRole(), 'limits');
  return (
    <section aria-labelledby="page-title">
      <ChannelHeader org={org} channel={channel} view="settings" />
      {/* A channel that is not there: the header says so once. */}
      <Problem error={!isNotFound(loaded.error) && loaded.error} />
      {limits && (
        <>
          <Scroll label="Effective settings table">
            <table>
              <caption>Effective settings</caption>
              <thead>
                <tr>
                  <th scope="col">Setting</th>
                  <th scope="col">Value</th>
                  <th scope="col">What it does</th>
                </tr>
              </thead>
              <tbody>
                {SETTINGS.map((s) => (
                  <tr key={s.key} data-setting={s.key}>
                    <th scope="row">{s.label}</th>
                    <td>{s.key === 'defaultContentType' ? <code>{s.show(limits)}</code> : s.show(limits)}</td>
                    <td class="muted">{s.about}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Scroll>
          {mayChange ? <SettingsForm org={org} channel={channel} limits={limits} onSaved={setSaved} /> : <p class="muted">Only owners and admins of the organization change these settings.</p>}
        </>
      )}
    </section>
  );
}

/**
 * Changes the settings: only what differs from `limits` is sent. A refused value's problem is shown
 * under the form, and the setting it names is marked invalid and takes focus.
 */
function SettingsForm({ org, channel, limits, onSaved }: { org: string; channel: string; limits: ChannelLimits; onSaved: (l: ChannelLimits) => void }) {
  const [draft, setDraft] = useState<Draft>(() => draftOf(limits));
  const [done, setDone] = useState('');
  const act = useAction();
  const form = useRef<HTMLFormElement>(null);
  const problemId = useId();
  // The setting a refused value's problem names: derived in the same render as the problem's text,
  // so the alert and the field's aria-invalid appear together (an effect set it one render later).
  const invalid = act.error instanceof EdgefluxError ? settingNamed(act.error.detail) : undefined;
  const set = (change: Partial<Draft>) => {
    setDone('');
    setDraft((d) => ({ ...d, ...change }));
  };
  const setNumber = (path: string, v: string) => set({ numbers: { ...draft.numbers, [path]: v } });

  useEffect(() => {
    const el = invalid ? (form.current?.elements.namedItem(invalid) as HTMLInputElement | null) : null;
    el?.closest('details')?.setAttribute('open', ''); // an advanced setting
    el?.focus();
  }, [invalid, act.error]);

  const save = (e: SubmitEvent) => {
    e.preventDefault();
    setDone('');
    void act.run(async () => {
      const l = await api.org(org).channels.setLimits(channel, patchOf(limits, draft));
      onSaved(l);
      setDraft(draftOf(l));
      setDone('Saved. The table shows the settings now in effect.');
    });
  };

  // Marks the setting a problem names, and points it at the problem's text.
  const field = (name: string) => (invalid === name ? { 'aria-invalid': true as const, 'aria-describedby': problemId } : {});
  const numberInput = (n: (typeof NUMBERS)[number]) => (
    <label key={n.path}>
      {n.label}
      <input name={n.path} type="number" required step={n.integer ? 1 : 'any'} min={0} value={draft.numbers[n.path]} onInput={(e) => setNumber(n.path, e.currentTarget.value)} {...field(n.path)} />
    </label>
  );

  return (
    <form ref={form} class="settings" aria-labelledby="change-settings" onSubmit={save}>
      <h2 id="change-settings">Change settings</h2>
      <fieldset>
        <legend>Messages published without a content type</legend>
        <label>
          Default content type
          <select value={draft.contentType} onChange={(e) => set({ contentType: e.currentTarget.value })}>
            {COMMON_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
            <option value={OTHER}>Other…</option>
          </select>
        </label>
        {draft.contentType === OTHER && (
          <label>
            Other content type
            <input name="defaultContentType" required placeholder="application/cbor" value={draft.otherType} onInput={(e) => set({ otherType: e.currentTarget.value })} {...field('defaultContentType')} />
          </label>
        )}
      </fieldset>
      <fieldset>
        <legend>Keep stored messages</legend>
        <label class="check">
          <input type="radio" name="keep" checked={draft.keepForever} onChange={() => set({ keepForever: true })} />
          Forever
        </label>
        <label class="check">
          <input type="radio" name="keep" checked={!draft.keepForever} onChange={() => set({ keepForever: false })} />
          For a number of days
        </label>
        {!draft.keepForever && (
          <label>
            Days to keep (at least 1/24: an hour)
            <input name="retentionDays" type="number" required step="any" min={0} value={draft.days} onInput={(e) => set({ days: e.currentTarget.value })} {...field('retentionDays')} />
          </label>
        )}
      </fieldset>
      <fieldset>
        <legend>Size and rates</legend>
        {NUMBERS.filter((n) => !n.advanced).map(numberInput)}
      </fieldset>
      <details class="advanced">
        <summary>Advanced: replay, flow control and storage batching</summary>
        <fieldset>
          <legend>Advanced</legend>
          {NUMBERS.filter((n) => n.advanced).map(numberInput)}
        </fieldset>
      </details>
      <div id={problemId}>
        <Problem error={act.error} />
      </div>
      <div class="row">
        <button type="submit" disabled={act.busy}>
          Save settings
        </button>
        <button type="button" class="quiet" disabled={act.busy} onClick={() => (act.clear(), set(draftOf(limits)))}>
          Reset
        </button>
        <span role="status">{done}</span>
      </div>
    </form>
  );
}
