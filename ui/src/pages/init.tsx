import { useState } from 'preact/hooks';
import { api, type SealStatus, sealStatus } from '../api';
import { Errors, Field, Link, Notice, PgpKeysField, ShownOnce, useAction, usePageTitle, usePoll } from '../components';
import { href } from '../router';

interface InitReply {
  keys: string[];
  keys_base64: string[];
  root_token: string;
}

export function InitPage() {
  usePageTitle('Init');
  const [seal, setSeal] = useState<SealStatus | undefined>();
  const [shares, setShares] = useState('5');
  const [threshold, setThreshold] = useState('3');
  const [pgpKeys, setPgpKeys] = useState<string[]>([]);
  // The reply with the shares lives only in this state, until the operator clears it.
  const [result, setResult] = useState<InitReply | undefined>();
  const [cleared, setCleared] = useState(false);
  const [run, busy, error] = useAction();
  const [loadError, setLoadError] = useState<unknown>();

  usePoll(async () => {
    try {
      setSeal(await sealStatus());
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, result ? 0 : 5000, [result]);

  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const body: Record<string, unknown> = { secret_shares: Number(shares), secret_threshold: Number(threshold) };
      if (pgpKeys.length) body.pgp_keys = pgpKeys;
      setResult(await api<InitReply>('PUT', 'sys/init', body));
    });
  };

  if (result) {
    const encrypted = pgpKeys.length > 0;
    return (
      <section>
        <h1>Init</h1>
        <ShownOnce
          title="Unseal keys and root token"
          warning={
            <>
              <strong>Shown once.</strong> keyward keeps no copy: these {result.keys_base64.length} shares (any {threshold} of them unseal) and the initial root
              token are on this page only. Give each share to a different operator, store them apart, and clear them from this page. Anyone with{' '}
              {threshold} shares can unseal keyward; lose more than {result.keys_base64.length - Number(threshold)} and it can never be unsealed.
              {encrypted && ' Each share is encrypted to the PGP key given in its position.'}
            </>
          }
          items={[...result.keys_base64.map((k, i) => ({ label: `Unseal key ${i + 1}`, value: k })), { label: 'Initial root token', value: result.root_token }]}
          file={{ name: `keyward-init-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.json`, json: result }}
          onDone={() => {
            setResult(undefined);
            setCleared(true);
          }}
        />
      </section>
    );
  }

  return (
    <section>
      <h1>Init</h1>
      <Errors error={loadError} />
      {cleared && (
        <Notice kind="ok">
          The shares were cleared from this page. Next: <Link to={href('unseal')}>unseal</Link> with {threshold} of them.
        </Notice>
      )}
      {seal?.initialized && !cleared && (
        <Notice>
          keyward is already initialized (threshold {seal.t} of {seal.n}). <Link to={href(seal.sealed ? 'unseal' : 'status')}>{seal.sealed ? 'Unseal it' : 'See its status'}</Link>.
        </Notice>
      )}
      {seal && !seal.initialized && (
        <form class="card narrow" onSubmit={submit}>
          {seal.init_pending && (
            <Notice kind="warn">
              An init awaits confirmation (its reply may not have reached anyone): unseal with its shares to confirm it, or initialize again to replace it.
            </Notice>
          )}
          <p>
            Makes the root key and splits it into shares. The shares are shown once, on this page, to you alone: have the operators who will hold them
            ready.
          </p>
          <Field id="init-shares" label="Key shares" hint="How many shares to make (1 to 255).">
            {(p) => <input {...p} type="number" min={1} max={255} required value={shares} onInput={(e) => setShares((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <Field id="init-threshold" label="Key threshold" hint="How many shares unseal (at least 2 when there are several shares).">
            {(p) => (
              <input {...p} type="number" min={1} max={255} required value={threshold} onInput={(e) => setThreshold((e.currentTarget as HTMLInputElement).value)} />
            )}
          </Field>
          <PgpKeysField id="init-pgp" onKeys={setPgpKeys} />
          {pgpKeys.length > 0 && <p class="hint">{pgpKeys.length} PGP keys read.</p>}
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Initialize
            </button>
          </div>
          <Errors error={error} />
        </form>
      )}
    </section>
  );
}
