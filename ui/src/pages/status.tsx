import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type Health, type Leader, sealStatus, type SealStatus, token } from '../api';
import { Errors, fmtNum, fmtTime, Link, Notice, useAction, usePageTitle, usePoll } from '../components';
import { href } from '../router';

/** NIST SP 800-38D: at most 2^32 GCM invocations with random 96-bit IVs under one key. */
export const NIST_GCM_LIMIT = 2 ** 32;

export interface KeyStatus {
  term: number;
  install_time: string;
  encryptions: number;
}

export interface RotateConfig {
  max_operations: number;
  interval: string;
  enabled: boolean;
}

/** keyward's sys/hsm: the PKCS#11 module and token this node uses. */
export interface HsmStatus {
  library: string;
  token_label: string | null;
  slot: number | null;
  seal_key_label: string;
  iv_policy: string;
  iv_style: string | null;
  key_wrap: Record<string, string> | null;
  connected: boolean;
  dispatch: { mode: string; max_parallel: number; round_trip_us: number; token_session_limit: number | null } | null;
}

const IV_STYLES: Record<string, string> = {
  caller: 'chosen by keyward',
  written: 'chosen by the token (written into the parameters)',
  appended: 'chosen by the token (appended to the output)',
};

function TokenModule({ hsm }: { hsm: HsmStatus }) {
  const d = hsm.dispatch;
  return (
    <dl class="facts">
      <Row name="Module">{hsm.library}</Row>
      <Row name="Token">{hsm.token_label ?? (hsm.slot === null ? '—' : `slot ${hsm.slot}`)}</Row>
      <Row name="Seal key">{hsm.seal_key_label}</Row>
      <Row name="GCM IVs">{hsm.iv_style ? IV_STYLES[hsm.iv_style] ?? hsm.iv_style : `not probed yet (policy: ${hsm.iv_policy})`}</Row>
      <Row name="Key wrap">{hsm.key_wrap ? Object.entries(hsm.key_wrap).map(([alg, mech]) => `${alg} (${mech})`).join(', ') : '—'}</Row>
      <Row name="Calls run">{d ? (d.mode === 'session-pool' ? `on a session pool, max_parallel ${d.max_parallel}` : 'on the event loop (in-process module)') : '—'}</Row>
      <Row name="Round trip">{d ? `${fmtNum(d.round_trip_us)} µs` : '—'}</Row>
      <Row name="Session limit">{d?.token_session_limit ? fmtNum(d.token_session_limit) : 'none reported'}</Row>
    </dl>
  );
}

/** What one read gave: its data, or the API's refusal (a page without sudo still shows the rest). */
type Got<T> = { data: T } | { error: unknown };

async function got<T>(p: Promise<T>): Promise<Got<T>> {
  try {
    return { data: await p };
  } catch (error) {
    return { error };
  }
}

function Row({ name, children }: { name: string; children: ComponentChildren }) {
  return (
    <div class="row">
      <dt>{name}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function KeyUsage({ status: k, config }: { status: KeyStatus; config: RotateConfig | undefined }) {
  const pct = (k.encryptions / NIST_GCM_LIMIT) * 100;
  return (
    <>
      <dl class="facts">
        <Row name="Active term">{k.term}</Row>
        <Row name="Installed">{fmtTime(k.install_time)}</Row>
        <Row name="Encryptions">
          {fmtNum(k.encryptions)} of the NIST SP 800-38D limit of {fmtNum(NIST_GCM_LIMIT)} ({pct < 0.01 && pct > 0 ? '< 0.01' : pct.toFixed(2)}%)
        </Row>
      </dl>
      <meter
        class="usage"
        min={0}
        max={NIST_GCM_LIMIT}
        value={k.encryptions}
        high={config?.enabled ? config.max_operations : undefined}
        aria-label="Encryptions under the active term against the NIST SP 800-38D limit"
      />
      {config && (
        <p class="hint">
          Automatic rotation {config.enabled ? 'on' : 'off'}: after {fmtNum(config.max_operations)} encryptions
          {config.interval && config.interval !== '0s' ? ` or every ${config.interval}` : ''}.
        </p>
      )}
    </>
  );
}

export function StatusPage() {
  usePageTitle('Status');
  const [seal, setSeal] = useState<SealStatus | undefined>();
  const [health, setHealth] = useState<Health | undefined>();
  const [leader, setLeader] = useState<Leader | undefined>();
  const [keyStatus, setKeyStatus] = useState<Got<KeyStatus> | undefined>();
  const [config, setConfig] = useState<Got<RotateConfig> | undefined>();
  const [hsm, setHsm] = useState<Got<HsmStatus> | undefined>();
  const [error, setError] = useState<unknown>();
  const [sealRun, sealing, sealError] = useAction();
  const marked = useRef(false);

  const reload = usePoll(async () => {
    try {
      const [s, h, l] = await Promise.all([
        sealStatus(),
        // Every state answers 200 here, so the body is always there to read.
        api<Health>('GET', 'sys/health?standbyok=true&sealedcode=200&uninitcode=200&standbycode=200'),
        api<Leader>('GET', 'sys/leader'),
      ]);
      setSeal(s);
      setHealth(h);
      setLeader(l);
      setError(undefined);
      if (token() && s.initialized && !s.sealed) {
        const [k, c, m] = await Promise.all([
          got(api<{ data: KeyStatus }>('GET', 'sys/key-status')),
          got(api<{ data: RotateConfig }>('GET', 'sys/rotate/config')),
          got(api<{ data: HsmStatus }>('GET', 'sys/hsm')),
        ]);
        setKeyStatus('data' in k ? { data: k.data.data } : k);
        setConfig('data' in c ? { data: c.data.data } : c);
        setHsm('data' in m ? { data: m.data.data } : m);
      } else {
        setKeyStatus(undefined);
        setConfig(undefined);
        setHsm(undefined);
      }
    } catch (err) {
      setError(err);
    }
  }, 5000);

  // The test (and anyone curious) reads how long the page took to become usable.
  useEffect(() => {
    if (seal && !marked.current) {
      marked.current = true;
      performance.mark('keyward:status-interactive');
    }
  }, [seal]);

  const doSeal = () =>
    sealRun(async () => {
      if (!confirm('Seal keyward? Every request will answer 503 until a quorum of shares unseals it.')) return;
      await api('PUT', 'sys/seal');
      reload();
    });

  return (
    <section data-ready={seal ? 'status' : undefined}>
      <h1>Status</h1>
      <Errors error={error} />
      {seal && (
        <>
          {!seal.initialized && (
            <Notice kind="warn">
              keyward is not initialized{seal.init_pending ? ' (an init awaits confirmation: unseal with its shares, or initialize again)' : ''}.{' '}
              <Link to={href('init')}>Initialize it</Link>.
            </Notice>
          )}
          {seal.initialized && seal.sealed && (
            <Notice kind="warn">
              keyward is sealed: {seal.progress} of {seal.t} shares given. <Link to={href('unseal')}>Unseal it</Link>.
            </Notice>
          )}
          {seal.rekey_pending && (
            <Notice kind="warn">
              Rekey {seal.rekey_pending.nonce} awaits completion: unseal with {seal.rekey_pending.t} of its {seal.rekey_pending.n} new shares to finish it, or
              discard it on the <Link to={href('rekey')}>Rekey page</Link>. Until then both sets of shares unseal.
            </Notice>
          )}
          <div class="grid">
            <section class="card" aria-labelledby="seal-h">
              <h2 id="seal-h">Seal</h2>
              <dl class="facts" id="seal-facts">
                <Row name="Initialized">{seal.initialized ? 'yes' : 'no'}</Row>
                <Row name="Sealed">{seal.sealed ? 'yes' : 'no'}</Row>
                <Row name="Seal type">{seal.type}</Row>
                <Row name="Shares">{seal.n ? `threshold ${seal.t} of ${seal.n}` : '—'}</Row>
                {seal.sealed && seal.initialized && <Row name="Unseal progress">{`${seal.progress} of ${seal.t}`}</Row>}
                <Row name="Storage">{seal.storage_type ?? '—'}</Row>
                <Row name="Version">{seal.version}</Row>
                <Row name="Cluster">{seal.cluster_name ? `${seal.cluster_name} (${seal.cluster_id})` : '—'}</Row>
              </dl>
              {token() && seal.initialized && !seal.sealed && (
                <div class="actions">
                  <button type="button" class="danger" onClick={doSeal} disabled={sealing}>
                    Seal now
                  </button>
                </div>
              )}
              <Errors error={sealError} />
            </section>
            <section class="card" aria-labelledby="ha-h">
              <h2 id="ha-h">High availability</h2>
              <dl class="facts">
                <Row name="HA">{leader?.ha_enabled ? 'enabled' : 'not enabled (single node)'}</Row>
                <Row name="This node">{health ? (seal.sealed ? 'sealed' : health.standby ? 'standby' : 'active') : '—'}</Row>
                <Row name="Leader">{leader?.leader_address || '—'}</Row>
                <Row name="Active since">{fmtTime(leader?.active_time && !leader.active_time.startsWith('0001') ? leader.active_time : undefined)}</Row>
                <Row name="Server time">{health ? fmtTime(new Date(health.server_time_utc * 1000).toISOString()) : '—'}</Row>
              </dl>
            </section>
            <section class="card" aria-labelledby="key-h">
              <h2 id="key-h">Encryption key</h2>
              {!token() ? (
                <p>
                  <Link to={href('login', { next: href('status') })}>Sign in</Link> to see the active key term and its usage.
                </p>
              ) : seal.sealed || !seal.initialized ? (
                <p>Shown once keyward is unsealed.</p>
              ) : keyStatus && 'data' in keyStatus ? (
                <KeyUsage status={keyStatus.data} config={config && 'data' in config ? config.data : undefined} />
              ) : (
                <Errors error={keyStatus?.error} />
              )}
              {config && 'error' in config && (
                <p class="hint">
                  Rotation config not shown: {config.error instanceof ApiError ? config.error.errors.join('; ') : String(config.error)} (reading sys/rotate/config needs sudo).
                </p>
              )}
            </section>
            <section class="card" aria-labelledby="hsm-h">
              <h2 id="hsm-h">Token module</h2>
              {!token() ? (
                <p>
                  <Link to={href('login', { next: href('status') })}>Sign in</Link> to see the PKCS#11 module and token.
                </p>
              ) : seal.sealed || !seal.initialized ? (
                <p>Shown once keyward is unsealed.</p>
              ) : hsm && 'data' in hsm ? (
                <TokenModule hsm={hsm.data} />
              ) : (
                <Errors error={hsm?.error} />
              )}
            </section>
          </div>
        </>
      )}
    </section>
  );
}
