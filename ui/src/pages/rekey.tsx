import { useRef, useState } from 'preact/hooks';
import { api, ApiError, type RekeyResult, type RekeyStatus, sealStatus, type SealStatus, token, type VerifyStatus } from '../api';
import { CopyButton, Errors, Field, Link, Notice, PgpKeysField, Progress, ShownOnce, useAction, usePageTitle, usePoll } from '../components';
import { href } from '../router';
import { ShareInput } from './unseal';

function NonceInput({ id, label, value, onValue }: { id: string; label: string; value: string; onValue: (v: string) => void }) {
  return (
    <Field id={id} label={label} hint="Type or paste the nonce the operator who started the rekey announced: the share counts only if it matches the rekey running now.">
      {(p) => <input {...p} type="text" autocomplete="off" spellcheck={false} required value={value} onInput={(e) => onValue((e.currentTarget as HTMLInputElement).value)} />}
    </Field>
  );
}

function StartForm({ onStarted }: { onStarted: (s: RekeyStatus) => void }) {
  const [shares, setShares] = useState('5');
  const [threshold, setThreshold] = useState('3');
  const [pgpKeys, setPgpKeys] = useState<string[]>([]);
  const [backup, setBackup] = useState(false);
  const [verification, setVerification] = useState(true);
  const [run, busy, error] = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const body: Record<string, unknown> = {
        secret_shares: Number(shares),
        secret_threshold: Number(threshold),
        backup,
        require_verification: verification,
      };
      if (pgpKeys.length) body.pgp_keys = pgpKeys;
      onStarted(await api<RekeyStatus>('PUT', 'sys/rekey/init', body));
    });
  };
  return (
    <form class="card narrow" onSubmit={submit} aria-labelledby="rekey-start-h">
      <h2 id="rekey-start-h">Start a rekey</h2>
      <p>A quorum of the current shares authorizes a new root key and a new set of shares. keyward keeps serving throughout.</p>
      <Field id="rekey-shares" label="New key shares">
        {(p) => <input {...p} type="number" min={1} max={255} required value={shares} onInput={(e) => setShares((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <Field id="rekey-threshold" label="New key threshold">
        {(p) => <input {...p} type="number" min={1} max={255} required value={threshold} onInput={(e) => setThreshold((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <PgpKeysField id="rekey-pgp" onKeys={setPgpKeys} />
      <div class="check">
        <input id="rekey-backup" type="checkbox" checked={backup} onChange={(e) => setBackup((e.currentTarget as HTMLInputElement).checked)} />
        <label for="rekey-backup">Keep a backup of the PGP-encrypted new shares in keyward (needs PGP keys)</label>
      </div>
      <div class="check">
        <input id="rekey-verify" type="checkbox" checked={verification} onChange={(e) => setVerification((e.currentTarget as HTMLInputElement).checked)} />
        <label for="rekey-verify">Require verification: switch only once a threshold of the new shares has been given back</label>
      </div>
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          Start rekey
        </button>
      </div>
      <Errors error={error} />
    </form>
  );
}

function Backup() {
  const [backup, setBackup] = useState<{ nonce: string; keys_base64: Record<string, string[]> } | undefined>();
  const [run, busy, error] = useAction();
  const [deleted, setDeleted] = useState(false);
  return (
    <section class="card" aria-labelledby="backup-h">
      <h2 id="backup-h">Backup of PGP-encrypted shares</h2>
      <p class="hint">Reading or deleting the backup needs a token with sudo on sys/rekey/backup.</p>
      <div class="actions">
        <button type="button" disabled={busy || !token()} onClick={() => run(async () => setBackup((await api('GET', 'sys/rekey/backup')).data))}>
          Retrieve backup
        </button>
        <button
          type="button"
          class="danger"
          disabled={busy || !token()}
          onClick={() =>
            run(async () => {
              if (!confirm('Delete the backup of the encrypted shares?')) return;
              await api('DELETE', 'sys/rekey/backup');
              setBackup(undefined);
              setDeleted(true);
            })
          }
        >
          Delete backup
        </button>
      </div>
      {deleted && <Notice kind="ok">Backup deleted.</Notice>}
      {backup && (
        <div>
          <p>Rekey {backup.nonce}:</p>
          <ul class="secrets">
            {Object.entries(backup.keys_base64).map(([fp, keys]) => (
              <li key={fp}>
                <span class="secret-label">{fp}</span>
                <code class="secret-value">{keys.join(' ')}</code>
              </li>
            ))}
          </ul>
        </div>
      )}
      <Errors error={error} />
    </section>
  );
}

export function RekeyPage() {
  usePageTitle('Rekey');
  const [seal, setSeal] = useState<SealStatus | undefined>();
  const [status, setStatus] = useState<RekeyStatus | undefined>();
  const [verify, setVerify] = useState<VerifyStatus | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  // The new shares: held in this component only, for the operator who gave the last share.
  const [result, setResult] = useState<RekeyResult | undefined>();
  const [share, setShare] = useState('');
  const [nonce, setNonce] = useState('');
  const [done, setDone] = useState<string | undefined>();
  const [accepted, setAccepted] = useState<string | undefined>();
  const seen = useRef<string | undefined>(undefined);
  const [run, busy, error] = useAction();
  const [cancelRun, cancelling, cancelError] = useAction();

  const reload = usePoll(async () => {
    try {
      const s = await sealStatus();
      setSeal(s);
      if (!s.initialized || s.sealed) {
        setStatus(undefined);
        setVerify(undefined);
        setLoadError(undefined);
        return;
      }
      const r = await api<RekeyStatus>('GET', 'sys/rekey/init');
      const v = r.verification_nonce ? await api<VerifyStatus>('GET', 'sys/rekey/verify') : undefined;
      setStatus(r);
      setVerify(v);
      if (r.started && !r.completion_pending) seen.current = r.nonce;
      else if (seen.current && !r.started) {
        setDone(`Rekey ${seen.current} is no longer in progress: it finished or was cancelled. The shares in use now: threshold ${s.t} of ${s.n}.`);
        seen.current = undefined;
      }
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, 1000);

  const giveShare = (e: Event) => {
    e.preventDefault();
    const key = share.trim();
    const n = nonce.trim();
    setShare('');
    setAccepted(undefined);
    void run(async () => {
      const answer = await api<RekeyStatus | RekeyResult>('PUT', 'sys/rekey/update', { key, nonce: n });
      if ('keys' in answer) {
        seen.current = answer.verification_required ? answer.nonce : undefined;
        setResult(answer);
        setNonce('');
      } else {
        setStatus(answer);
        setAccepted(`Share accepted: ${answer.progress} of ${answer.required}.`);
      }
    }).then(reload);
  };

  const giveNewShare = (e: Event) => {
    e.preventDefault();
    const key = share.trim();
    const n = nonce.trim();
    setShare('');
    setAccepted(undefined);
    void run(async () => {
      const answer = await api<VerifyStatus | { nonce: string; complete: true }>('PUT', 'sys/rekey/verify', { key, nonce: n });
      if ('complete' in answer) {
        seen.current = undefined;
        setNonce('');
        setDone('Verification complete: the new shares are in use; the old shares no longer unseal.');
      } else {
        setVerify(answer);
        setAccepted(`New share accepted: ${answer.progress} of ${answer.t}.`);
      }
    }).then(reload);
  };

  const cancel = () =>
    cancelRun(async () => {
      if (!confirm('Cancel this rekey? Shares given so far are forgotten and the current shares stay in use.')) return;
      await api('DELETE', 'sys/rekey/init');
      seen.current = undefined;
      setDone('Rekey cancelled: the current shares stay in use.');
      reload();
    });

  const discard = () =>
    cancelRun(async () => {
      if (!confirm('Discard the pending rekey? Its new shares will no longer open anything; the current shares stay in use.')) return;
      await api('DELETE', 'sys/rekey/init');
      setDone('Pending rekey discarded: the current shares stay in use.');
      reload();
    });

  const restartVerification = () =>
    cancelRun(async () => {
      setVerify(await api<VerifyStatus>('DELETE', 'sys/rekey/verify'));
      reload();
    });

  let body;
  if (result) {
    body = (
      <ShownOnce
        title="New unseal keys"
        warning={
          <>
            <strong>Shown once, in this browser only.</strong> These {result.keys_base64.length} new shares (any {status?.t ?? '…'} of them unseal) are on this page
            only; keyward keeps no copy
            {result.backup ? ' (except the PGP-encrypted backup you asked for)' : ''}. Hand each to its new holder and clear them from this page.{' '}
            {result.verification_required
              ? 'The switch waits for verification: a threshold of the new shares must be given back below. Until then the old shares stay in use.'
              : 'keyward switches to them as this reply leaves: from then on the old shares no longer unseal.'}
          </>
        }
        items={result.keys_base64.map((k, i) => ({ label: `New unseal key ${i + 1}`, value: k }))}
        file={{ name: `keyward-rekey-${result.nonce}.json`, json: result }}
        onDone={() => setResult(undefined)}
      >
        {result.verification_nonce && (
          <p>
            Verification nonce: <code id="verification-nonce-once">{result.verification_nonce}</code>
          </p>
        )}
      </ShownOnce>
    );
  } else if (!seal) {
    body = null;
  } else if (!seal.initialized) {
    body = (
      <Notice>
        keyward is not initialized. <Link to={href('init')}>Initialize it</Link>.
      </Notice>
    );
  } else if (seal.sealed) {
    body = (
      <Notice kind="warn">
        keyward is sealed: <Link to={href('unseal')}>unseal it</Link> before a rekey.
        {seal.rekey_pending && ` Rekey ${seal.rekey_pending.nonce} awaits completion: ${seal.rekey_pending.t} of its ${seal.rekey_pending.n} new shares unseal and finish it.`}
      </Notice>
    );
  } else if (status?.completion_pending) {
    body = (
      <section class="card narrow" aria-labelledby="pending-h" id="rekey-pending">
        <h2 id="pending-h">Rekey awaiting completion</h2>
        <Notice kind="warn">
          Rekey {status.nonce} awaits completion: its new shares (threshold {status.t} of {status.n}) were handed out, but the switch to them is not done. Until it
          is, both the current and the new shares unseal. Seal and unseal with {status.t} of the new shares to finish it, or discard it to keep the current
          shares (discarding needs a token with sudo: the new shares may be all someone holds).
        </Notice>
        <div class="actions">
          <button type="button" class="danger" onClick={discard} disabled={cancelling}>
            Discard pending rekey
          </button>
        </div>
        <Errors error={cancelError} />
      </section>
    );
  } else if (status && status.started && status.verification_nonce && verify) {
    body = (
      <section class="card narrow" aria-labelledby="verify-h" id="rekey-verify">
        <h2 id="verify-h">Verify the new shares</h2>
        <p>
          The new root key is made; the switch waits until {verify.t} of the {verify.n} new shares are given back, each from its holder's browser.
        </p>
        <p class="nonce">
          Verification nonce: <code id="verification-nonce">{verify.nonce}</code> <CopyButton value={verify.nonce} what="the verification nonce" />
        </p>
        <Progress id="verify-progress" value={verify.progress} max={verify.t} label="Verification progress" />
        <form onSubmit={giveNewShare}>
          <NonceInput id="verify-nonce-input" label="Verification nonce" value={nonce} onValue={setNonce} />
          <ShareInput id="verify-key" label="New unseal key (share)" value={share} onValue={setShare} hint="One of the new shares. Hidden as you type; never stored." />
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Give new share
            </button>
            <button type="button" onClick={restartVerification} disabled={cancelling}>
              Restart verification
            </button>
            <button type="button" class="danger" onClick={cancel} disabled={cancelling}>
              Cancel rekey
            </button>
          </div>
        </form>
        {accepted && !error && <Notice kind="ok">{accepted}</Notice>}
        <Errors error={error} />
        <Errors error={cancelError} />
      </section>
    );
  } else if (status?.started) {
    body = (
      <section class="card narrow" aria-labelledby="progress-h" id="rekey-progress-card">
        <h2 id="progress-h">Rekey in progress</h2>
        <p class="nonce">
          Nonce: <code id="rekey-nonce">{status.nonce}</code> <CopyButton value={status.nonce} what="the rekey nonce" />
        </p>
        <p>
          New layout: threshold {status.t} of {status.n}
          {status.pgp_fingerprints ? `, encrypted to ${status.pgp_fingerprints.length} PGP keys` : ''}
          {status.backup ? ', with a backup' : ''}
          {status.verification_required ? ', verified before the switch' : ''}. Holders of the current shares: confirm the nonce matches the one announced, then
          give your share.
        </p>
        <Progress id="rekey-progress" value={status.progress} max={status.required} label="Current shares given" />
        <form onSubmit={giveShare}>
          <NonceInput id="rekey-nonce-input" label="Rekey nonce" value={nonce} onValue={setNonce} />
          <ShareInput id="rekey-key" label="Current unseal key (share)" value={share} onValue={setShare} hint="Hidden as you type; never stored." />
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Give share
            </button>
            <button type="button" class="danger" onClick={cancel} disabled={cancelling}>
              Cancel rekey
            </button>
          </div>
        </form>
        {accepted && !error && <Notice kind="ok">{accepted}</Notice>}
        <Errors error={error} />
        <Errors error={cancelError} />
      </section>
    );
  } else if (status) {
    body = (
      <StartForm
        onStarted={(s) => {
          setDone(undefined);
          seen.current = s.nonce;
          setStatus(s);
        }}
      />
    );
  }

  return (
    <section>
      <h1>Rekey</h1>
      {done && !result && <Notice kind="ok">{done}</Notice>}
      {loadError instanceof ApiError && loadError.status === 503 ? null : <Errors error={loadError} />}
      {body}
      {token() && seal && !seal.sealed && seal.initialized && <Backup />}
    </section>
  );
}
