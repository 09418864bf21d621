import { useState } from 'preact/hooks';
import { api, type RewrapStatus, type Term } from '../api';
import { Errors, Field, fmtNum, fmtTime, NeedsToken, Notice, Progress, useAction, usePageTitle, usePoll } from '../components';
import { KeyUsage, type KeyStatus, type RotateConfig } from './status';

function ConfigForm({ config, onSaved }: { config: RotateConfig; onSaved: () => void }) {
  const [maxOps, setMaxOps] = useState(String(config.max_operations));
  const [interval, setInterval] = useState(config.interval);
  const [enabled, setEnabled] = useState(config.enabled);
  const [saved, setSaved] = useState(false);
  const [run, busy, error] = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    setSaved(false);
    void run(async () => {
      await api('PUT', 'sys/rotate/config', { max_operations: Number(maxOps), interval, enabled });
      setSaved(true);
      onSaved();
    });
  };
  return (
    <form onSubmit={submit} aria-labelledby="config-h" class="card">
      <h2 id="config-h">Automatic rotation (sys/rotate/config)</h2>
      <Field id="cfg-max-ops" label="Max operations" hint="Encryptions under one term before rotating: 1,000,000 to 3,865,470,566.">
        {(p) => <input {...p} type="number" min={1} required value={maxOps} onInput={(e) => setMaxOps((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <Field id="cfg-interval" label="Interval" hint="0 (off) or at least 24h, such as 720h.">
        {(p) => <input {...p} type="text" required value={interval} onInput={(e) => setInterval((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <div class="check">
        <input id="cfg-enabled" type="checkbox" checked={enabled} onChange={(e) => setEnabled((e.currentTarget as HTMLInputElement).checked)} />
        <label for="cfg-enabled">Enabled</label>
      </div>
      <div class="actions">
        <button type="submit" disabled={busy}>
          Save rotation config
        </button>
      </div>
      {saved && <Notice kind="ok">Rotation config saved.</Notice>}
      <Errors error={error} />
    </form>
  );
}

function Rewrap({ onChange }: { onChange: () => void }) {
  const [status, setStatus] = useState<RewrapStatus | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [run, busy, error] = useAction();
  const running = status?.state === 'running';
  // Fast while a rewrap runs, so the bar moves; slowly otherwise, to see one started elsewhere.
  const reload = usePoll(
    async () => {
      try {
        const s = (await api<{ data: RewrapStatus }>('GET', 'sys/rotate/rewrap')).data;
        if (status?.state === 'running' && s.state !== 'running') onChange();
        setStatus(s);
        setLoadError(undefined);
      } catch (err) {
        setLoadError(err);
      }
    },
    running ? 500 : 5000,
    [running],
  );
  const start = () =>
    run(async () => {
      setStatus((await api<{ data: RewrapStatus }>('POST', 'sys/rotate/rewrap')).data);
      reload();
    });
  const cancel = () =>
    run(async () => {
      setStatus((await api<{ data: RewrapStatus }>('DELETE', 'sys/rotate/rewrap')).data);
      onChange();
    });
  return (
    <section class="card" aria-labelledby="rewrap-h">
      <h2 id="rewrap-h">Rewrap</h2>
      <p>Re-encrypts every value still under an older term to the active term, online and throttled, so that older terms can be pruned.</p>
      <Errors error={loadError} />
      {status && (
        <>
          <p id="rewrap-state">
            State: <strong>{status.state}</strong>
            {status.target_term ? `, to term ${status.target_term}` : ''}
            {running && status.rate ? `, ${fmtNum(status.rate)} values/s` : ''}
            {status.started_at ? `; started ${fmtTime(status.started_at)}` : ''}
            {status.finished_at ? `, finished ${fmtTime(status.finished_at)}` : ''}
            {status.state === 'done' || status.state === 'canceled' ? `; ${fmtNum(status.rewrapped)} values re-encrypted` : ''}
          </p>
          {status.state !== 'idle' && <Progress id="rewrap-progress" value={status.done} max={status.total} label="Values checked" />}
          {status.error && <Errors error={new Error(status.error)} />}
        </>
      )}
      <div class="actions">
        <button type="button" class="primary" onClick={start} disabled={busy || running}>
          Start rewrap
        </button>
        <button type="button" onClick={cancel} disabled={busy || !running}>
          Cancel rewrap
        </button>
      </div>
      <Errors error={error} />
    </section>
  );
}

export function RotatePage() {
  usePageTitle('Rotate');
  return (
    <section>
      <h1>Rotate</h1>
      <NeedsToken>
        <RotateContent />
      </NeedsToken>
    </section>
  );
}

function RotateContent() {
  const [key, setKey] = useState<KeyStatus | undefined>();
  const [config, setConfig] = useState<RotateConfig | undefined>();
  const [configError, setConfigError] = useState<unknown>();
  const [terms, setTerms] = useState<Term[] | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [pruned, setPruned] = useState<number[] | undefined>();
  const [rotated, setRotated] = useState<number | undefined>();
  const [run, busy, error] = useAction();
  const [pruneRun, pruning, pruneError, setPruneError] = useAction();

  const reload = usePoll(async () => {
    try {
      const [k, t] = await Promise.all([api<{ data: KeyStatus }>('GET', 'sys/key-status'), api<{ data: { terms: Term[] } }>('GET', 'sys/rotate/terms')]);
      setKey(k.data);
      setTerms(t.data.terms);
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
    try {
      setConfig((await api<{ data: RotateConfig }>('GET', 'sys/rotate/config')).data);
      setConfigError(undefined);
    } catch (err) {
      setConfigError(err);
    }
  }, 5000);

  const rotate = () =>
    run(async () => {
      if (!confirm('Rotate now? A new term key is generated in the token; new writes use it, older values stay readable.')) return;
      setPruned(undefined);
      await api('PUT', 'sys/rotate');
      const k = (await api<{ data: KeyStatus }>('GET', 'sys/key-status')).data;
      setRotated(k.term);
      reload();
    });

  const prune = () =>
    pruneRun(async () => {
      if (!confirm('Prune every older term that no stored value uses? Their keys are deleted for good.')) return;
      setPruned((await api<{ data: { pruned: number[] } }>('PUT', 'sys/rotate/prune')).data.pruned);
      reload();
    });

  return (
    <>
      <Errors error={loadError} />
      <div class="grid">
        <section class="card" aria-labelledby="active-h">
          <h2 id="active-h">Active term</h2>
          {key && <KeyUsage status={key} config={config} />}
          <div class="actions">
            <button type="button" class="primary" onClick={rotate} disabled={busy}>
              Rotate now
            </button>
          </div>
          {rotated !== undefined && <Notice kind="ok">Rotated: term {rotated} is now active.</Notice>}
          <Errors error={error} />
        </section>
        {config ? <ConfigForm key={JSON.stringify(config)} config={config} onSaved={reload} /> : <Errors error={configError} />}
      </div>
      <section class="card" aria-labelledby="terms-h">
        <h2 id="terms-h">Terms</h2>
        {terms && (
          <table id="terms-table">
            <caption>Every key term, and how many stored values each protects</caption>
            <thead>
              <tr>
                <th scope="col">Term</th>
                <th scope="col">Installed</th>
                <th scope="col">Encryptions</th>
                <th scope="col">Values</th>
                <th scope="col">Active</th>
              </tr>
            </thead>
            <tbody>
              {terms.map((t) => (
                <tr key={t.term} data-term={t.term}>
                  <td>{t.term}</td>
                  <td>{fmtTime(t.install_time)}</td>
                  <td class="num">{fmtNum(t.encryptions)}</td>
                  <td class="num" data-values={t.values}>
                    {fmtNum(t.values)}
                  </td>
                  <td>{t.active ? 'active' : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <div class="actions">
          <button type="button" onClick={prune} disabled={pruning}>
            Prune unused terms
          </button>
        </div>
        {pruned && <Notice kind="ok">{pruned.length ? `Pruned terms ${pruned.join(', ')}.` : 'No term to prune.'}</Notice>}
        <Errors error={pruneError} />
      </section>
      <Rewrap
        onChange={() => {
          // What a refused prune said is out of date once a rewrap has run.
          setPruneError(undefined);
          reload();
        }}
      />
    </>
  );
}
