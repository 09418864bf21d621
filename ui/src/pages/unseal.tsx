import { useState } from 'preact/hooks';
import { announceSeal, api, type SealStatus, sealStatus } from '../api';
import { Errors, Field, Link, Notice, Progress, useAction, usePageTitle, usePoll } from '../components';
import { href } from '../router';

/** A share input: hidden as typed, never autocompleted, cleared as soon as it is sent. */
export function ShareInput({ id, label, value, onValue, hint }: { id: string; label: string; value: string; onValue: (v: string) => void; hint?: string }) {
  return (
    <Field id={id} label={label} hint={hint}>
      {(p) => (
        <input
          {...p}
          type="password"
          autocomplete="off"
          autocapitalize="off"
          spellcheck={false}
          required
          value={value}
          onInput={(e) => onValue((e.currentTarget as HTMLInputElement).value)}
        />
      )}
    </Field>
  );
}

export function UnsealPage() {
  usePageTitle('Unseal');
  const [seal, setSeal] = useState<SealStatus | undefined>();
  const [share, setShare] = useState('');
  const [loadError, setLoadError] = useState<unknown>();
  const [run, busy, error] = useAction();
  const [given, setGiven] = useState(false);

  // Polled so that every operator's browser shows the progress the others make.
  const reload = usePoll(async () => {
    try {
      setSeal(await sealStatus());
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, 1000);

  const submit = (e: Event) => {
    e.preventDefault();
    const key = share.trim();
    setShare('');
    void run(async () => {
      setGiven(false);
      setSeal(announceSeal(await api<SealStatus>('PUT', 'sys/unseal', { key })));
      setGiven(true);
    }).then(reload);
  };

  const reset = () =>
    void run(async () => {
      setGiven(false);
      setSeal(announceSeal(await api<SealStatus>('PUT', 'sys/unseal', { reset: true })));
    });

  return (
    <section>
      <h1>Unseal</h1>
      <Errors error={loadError} />
      {seal && !seal.initialized && !seal.init_pending && (
        <Notice>
          keyward is not initialized. <Link to={href('init')}>Initialize it</Link>.
        </Notice>
      )}
      {seal && (seal.initialized || seal.init_pending) && !seal.sealed && (
        <Notice kind="ok">
          <span id="unsealed">keyward is unsealed.</span> <Link to={href('status')}>See its status</Link>.
        </Notice>
      )}
      {seal && (seal.initialized || seal.init_pending) && seal.sealed && (
        <div class="card narrow">
          <p>
            Each operator gives one share, from any browser; the progress below follows everyone's. keyward unseals when {seal.t} shares have been given.
          </p>
          {seal.init_pending && <Notice kind="warn">The init is not confirmed yet: its shares confirm it here.</Notice>}
          {seal.rekey_pending && (
            <Notice kind="warn">
              Rekey {seal.rekey_pending.nonce} awaits completion: either the current shares ({seal.t} of {seal.n}) or {seal.rekey_pending.t} of its{' '}
              {seal.rekey_pending.n} new shares unseal (the new ones finish the rekey).
            </Notice>
          )}
          <Progress id="unseal-progress" value={seal.progress} max={seal.t} label="Unseal progress" />
          {seal.nonce && <p class="hint">Attempt nonce: {seal.nonce}</p>}
          <form onSubmit={submit}>
            <ShareInput id="unseal-key" label="Unseal key (share)" value={share} onValue={setShare} hint="Hex or base64. Hidden as you type; never stored." />
            <div class="actions">
              <button type="submit" class="primary" disabled={busy}>
                Give share
              </button>
              <button type="button" onClick={reset} disabled={busy || seal.progress === 0}>
                Reset progress
              </button>
            </div>
          </form>
          {given && !error && <Notice kind="ok">Share accepted.</Notice>}
          <Errors error={error} />
        </div>
      )}
    </section>
  );
}
