import { useState } from 'preact/hooks';
import { api, ApiError, apiPath, callRaw, errorOf, type Mount } from '../api';
import { Errors, Field, fmtTime, Link, NeedsToken, Notice, useAction, usePageTitle, usePoll } from '../components';
import { href, navigate } from '../router';

type Data = Record<string, unknown>;

interface Kv2Version {
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

interface Kv2Metadata {
  current_version: number;
  oldest_version: number;
  max_versions: number;
  created_time: string;
  updated_time: string;
  versions: Record<string, Kv2Version>;
}

interface MountInfo {
  path: string;
  type: string;
  version: 1 | 2;
  description: string;
}

function mountsOf(table: Record<string, Mount>): MountInfo[] {
  return Object.entries(table)
    .filter(([, m]) => m && typeof m === 'object' && typeof m.type === 'string')
    .map(([path, m]): MountInfo => ({ path, type: m.type, version: m.options?.version === '2' || m.type === 'kv-v2' ? 2 : 1, description: m.description ?? '' }))
    .sort((a, b) => a.path.localeCompare(b.path));
}

const browsable = (m: MountInfo) => m.type === 'kv' || m.type === 'kv-v2';

function go(path: string, version?: number): void {
  navigate(href('secrets', path ? { path, ...(version ? { version: String(version) } : {}) } : {}));
}

function parseJsonObject(text: string): Data {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`the data is not valid JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the data must be a JSON object, such as {"password": "…"}');
  return v as Data;
}

function Crumbs({ path }: { path: string }) {
  const parts = path.split('/').filter(Boolean);
  return (
    <nav aria-label="Breadcrumb" class="crumbs">
      <ol>
        <li>
          <Link to={href('secrets')}>Mounts</Link>
        </li>
        {parts.map((p, i) => {
          const to = `${parts.slice(0, i + 1).join('/')}${i < parts.length - 1 || path.endsWith('/') ? '/' : ''}`;
          return (
            <li key={to}>
              {i === parts.length - 1 ? (
                <span aria-current="location">{p}</span>
              ) : (
                <Link to={href('secrets', { path: to })}>{p}</Link>
              )}
            </li>
          );
        })}
      </ol>
    </nav>
  );
}

/** The values of a secret, hidden until asked for. */
function DataTable({ data }: { data: Data }) {
  const [shown, setShown] = useState(false);
  const keys = Object.keys(data).sort();
  return (
    <>
      <table class="kv" id="secret-data">
        <caption>Keys and values</caption>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Value</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td>
                <code data-key={k}>{shown ? (typeof data[k] === 'string' ? (data[k] as string) : JSON.stringify(data[k])) : '••••••••'}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="actions">
        <button type="button" aria-pressed={shown} onClick={() => setShown(!shown)}>
          {shown ? 'Hide values' : 'Reveal values'}
        </button>
      </div>
    </>
  );
}

function JsonEditor({ id, value, onValue, label }: { id: string; value: string; onValue: (v: string) => void; label: string }) {
  return (
    <Field id={id} label={label} hint='A JSON object of keys and values, such as {"password": "hunter2"}.'>
      {(p) => <textarea {...p} rows={6} spellcheck={false} required value={value} onInput={(e) => onValue((e.currentTarget as HTMLTextAreaElement).value)} />}
    </Field>
  );
}

function EnableMount({ onDone }: { onDone: () => void }) {
  const [path, setPath] = useState('');
  const [version, setVersion] = useState('2');
  const [description, setDescription] = useState('');
  const [run, busy, error] = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await api('POST', `sys/mounts/${apiPath(path.trim().replace(/\/+$/, ''))}`, { type: 'kv', options: { version }, description });
      setPath('');
      setDescription('');
      onDone();
    });
  };
  return (
    <form class="card narrow" onSubmit={submit} aria-labelledby="enable-h">
      <h2 id="enable-h">Enable a KV secrets engine</h2>
      <Field id="mount-path" label="Path" hint="Letters, digits and . _ - segments, such as team-a/kv.">
        {(p) => <input {...p} type="text" required value={path} onInput={(e) => setPath((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <Field id="mount-version" label="KV version">
        {(p) => (
          <select {...p} value={version} onChange={(e) => setVersion((e.currentTarget as HTMLSelectElement).value)}>
            <option value="1">1 (one value per path)</option>
            <option value="2">2 (versioned)</option>
          </select>
        )}
      </Field>
      <Field id="mount-description" label="Description (optional)">
        {(p) => <input {...p} type="text" value={description} onInput={(e) => setDescription((e.currentTarget as HTMLInputElement).value)} />}
      </Field>
      <div class="actions">
        <button type="submit" disabled={busy}>
          Enable engine
        </button>
      </div>
      <Errors error={error} />
    </form>
  );
}

function MountList({ mounts, onChange }: { mounts: MountInfo[]; onChange: () => void }) {
  const [run, busy, error] = useAction();
  const disable = (m: MountInfo) =>
    run(async () => {
      if (!confirm(`Disable ${m.path}? Every secret stored under it is deleted.`)) return;
      await api('DELETE', `sys/mounts/${apiPath(m.path.replace(/\/$/, ''))}`);
      onChange();
    });
  return (
    <section class="card" aria-labelledby="mounts-h">
      <h2 id="mounts-h">Secrets engines</h2>
      <table id="mounts-table">
        <caption>Mounted secrets engines</caption>
        <thead>
          <tr>
            <th scope="col">Path</th>
            <th scope="col">Type</th>
            <th scope="col">Description</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {mounts.map((m) => (
            <tr key={m.path}>
              <td>{browsable(m) ? <Link to={href('secrets', { path: m.path })}>{m.path}</Link> : m.path}</td>
              <td>{browsable(m) ? `kv version ${m.version}` : `${m.type} (not browsable in the console)`}</td>
              <td>{m.description}</td>
              <td>
                <button type="button" class="small danger" aria-label={`Disable ${m.path}`} disabled={busy} onClick={() => disable(m)}>
                  Disable
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Errors error={error} />
    </section>
  );
}

/** A folder of a KV mount: its keys, and a form for a new secret under it. */
function Folder({ mount, rel }: { mount: MountInfo; rel: string }) {
  const [keys, setKeys] = useState<string[] | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [name, setName] = useState('');
  const [json, setJson] = useState('{\n  \n}');
  const [run, busy, error] = useAction();
  usePoll(
    async () => {
      const listPath = mount.version === 2 ? `${mount.path}metadata/${rel}` : `${mount.path}${rel}`;
      const r = await callRaw('GET', `${apiPath(listPath)}?list=true`);
      if (r.status === 404) {
        setKeys([]);
        setLoadError(undefined);
      } else if (r.status === 200) {
        setKeys((r.body.data?.keys as string[]) ?? []);
        setLoadError(undefined);
      } else setLoadError(errorOf(r));
    },
    0,
    [mount.path, rel],
  );
  const create = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const data = parseJsonObject(json);
      const target = `${rel}${name.trim().replace(/^\/+/, '')}`;
      if (!target || target.endsWith('/')) throw new Error('give the secret a name (it may not end with "/")');
      if (mount.version === 2) await api('POST', apiPath(`${mount.path}data/${target}`), { data });
      else await api('POST', apiPath(`${mount.path}${target}`), data);
      go(`${mount.path}${target}`);
    });
  };
  return (
    <>
      <section class="card" aria-labelledby="keys-h">
        <h2 id="keys-h">
          {mount.path}
          {rel}
        </h2>
        <Errors error={loadError} />
        {keys && keys.length === 0 && <p>No secrets here yet.</p>}
        {keys && keys.length > 0 && (
          <ul class="keys" id="key-list">
            {keys.map((k) => (
              <li key={k}>
                <Link to={href('secrets', { path: `${mount.path}${rel}${k}` })}>{k}</Link>
              </li>
            ))}
          </ul>
        )}
      </section>
      <form class="card narrow" onSubmit={create} aria-labelledby="new-h">
        <h2 id="new-h">New secret</h2>
        <Field id="new-path" label={`Path under ${mount.path}${rel}`}>
          {(p) => <input {...p} type="text" required value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
        <JsonEditor id="new-data" label="Data (JSON object)" value={json} onValue={setJson} />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Save secret
          </button>
        </div>
        <Errors error={error} />
      </form>
    </>
  );
}

function SecretV1({ mount, rel }: { mount: MountInfo; rel: string }) {
  const [data, setData] = useState<Data | undefined>();
  const [missing, setMissing] = useState(false);
  const [loadError, setLoadError] = useState<unknown>();
  const [json, setJson] = useState('');
  const [saved, setSaved] = useState(false);
  const [run, busy, error] = useAction();
  const path = apiPath(`${mount.path}${rel}`);
  const reload = usePoll(
    async () => {
      const r = await callRaw('GET', path);
      setMissing(r.status === 404);
      if (r.status === 200) {
        setData(r.body.data as Data);
        setJson(JSON.stringify(r.body.data, null, 2));
        setLoadError(undefined);
      } else if (r.status !== 404) setLoadError(errorOf(r));
      else setData(undefined);
    },
    0,
    [path],
  );
  const save = (e: Event) => {
    e.preventDefault();
    setSaved(false);
    void run(async () => {
      await api('PUT', path, parseJsonObject(json));
      setSaved(true);
      reload();
    });
  };
  const remove = () =>
    run(async () => {
      if (!confirm(`Delete ${mount.path}${rel}?`)) return;
      await api('DELETE', path);
      go(`${mount.path}${rel.replace(/[^/]*$/, '')}`);
    });
  return (
    <section class="card" aria-labelledby="secret-h">
      <h2 id="secret-h">
        {mount.path}
        {rel}
      </h2>
      <Errors error={loadError} />
      {missing && <p>No secret at this path.</p>}
      {data && <DataTable data={data} />}
      <form onSubmit={save}>
        <JsonEditor id="edit-data" label="New value (JSON object)" value={json} onValue={setJson} />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Save
          </button>
          <button type="button" class="danger" disabled={busy || !data} onClick={remove}>
            Delete
          </button>
        </div>
      </form>
      {saved && <Notice kind="ok">Saved.</Notice>}
      <Errors error={error} />
    </section>
  );
}

function SecretV2({ mount, rel, version }: { mount: MountInfo; rel: string; version: number | undefined }) {
  const [data, setData] = useState<Data | undefined>();
  const [shownVersion, setShownVersion] = useState<{ version: number; deletion_time: string; destroyed: boolean } | undefined>();
  const [meta, setMeta] = useState<Kv2Metadata | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [json, setJson] = useState('');
  const [saved, setSaved] = useState<number | undefined>();
  const [run, busy, error] = useAction();
  const dataPath = apiPath(`${mount.path}data/${rel}`);
  const metaPath = apiPath(`${mount.path}metadata/${rel}`);
  const reload = usePoll(
    async () => {
      const [d, m] = await Promise.all([callRaw('GET', `${dataPath}${version ? `?version=${version}` : ''}`), callRaw('GET', metaPath)]);
      // A deleted or destroyed version answers 404 with its metadata.
      const body = d.body?.data as { data: Data | null; metadata: { version: number; deletion_time: string; destroyed: boolean } } | undefined;
      if (d.status === 200 || (d.status === 404 && body?.metadata)) {
        setData(body?.data ?? undefined);
        setShownVersion(body?.metadata);
        if (body?.data && !version) setJson(JSON.stringify(body.data, null, 2));
        setLoadError(undefined);
      } else if (d.status === 404) {
        setData(undefined);
        setShownVersion(undefined);
      } else setLoadError(errorOf(d));
      setMeta(m.status === 200 ? (m.body.data as Kv2Metadata) : undefined);
    },
    0,
    [dataPath, version],
  );
  const save = (e: Event) => {
    e.preventDefault();
    setSaved(undefined);
    void run(async () => {
      const r = await api<{ data: { version: number } }>('POST', dataPath, { data: parseJsonObject(json) });
      setSaved(r.data.version);
      if (version) go(`${mount.path}${rel}`);
      else reload();
    });
  };
  const change = (kind: 'delete' | 'undelete' | 'destroy', v: number) =>
    run(async () => {
      if (kind === 'destroy' && !confirm(`Destroy version ${v} of ${mount.path}${rel}? Its data is removed for good.`)) return;
      await api('POST', apiPath(`${mount.path}${kind}/${rel}`), { versions: [v] });
      reload();
    });
  const removeAll = () =>
    run(async () => {
      if (!confirm(`Delete every version and the metadata of ${mount.path}${rel}?`)) return;
      await api('DELETE', metaPath);
      go(`${mount.path}${rel.replace(/[^/]*$/, '')}`);
    });
  const versions = meta ? Object.entries(meta.versions).sort((a, b) => Number(b[0]) - Number(a[0])) : [];
  const now = Date.now();
  const stateOf = (v: Kv2Version) => (v.destroyed ? 'destroyed' : v.deletion_time && Date.parse(v.deletion_time) <= now ? 'deleted' : 'live');
  return (
    <>
      <section class="card" aria-labelledby="secret-h">
        <h2 id="secret-h">
          {mount.path}
          {rel}
          {shownVersion ? `, version ${shownVersion.version}` : ''}
        </h2>
        <Errors error={loadError} />
        {!meta && !loadError && <p>No secret at this path.</p>}
        {shownVersion && !data && (
          <Notice kind="warn">
            <span id="version-state">Version {shownVersion.version} is {shownVersion.destroyed ? 'destroyed' : `deleted (since ${fmtTime(shownVersion.deletion_time)})`}.</span>
          </Notice>
        )}
        {data && <DataTable data={data} />}
        {version && (
          <p>
            <Link to={href('secrets', { path: `${mount.path}${rel}` })}>Show the current version</Link>
          </p>
        )}
        <form onSubmit={save}>
          <JsonEditor id="edit-data" label="New version (JSON object)" value={json} onValue={setJson} />
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              Save new version
            </button>
            <button type="button" class="danger" disabled={busy || !meta} onClick={removeAll}>
              Delete all versions and metadata
            </button>
          </div>
        </form>
        {saved !== undefined && <Notice kind="ok">Saved as version {saved}.</Notice>}
      </section>
      {meta && (
        <section class="card" aria-labelledby="versions-h">
          <h2 id="versions-h">Versions</h2>
          <table id="versions-table">
            <caption>
              Current version {meta.current_version}; updated {fmtTime(meta.updated_time)}
            </caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Created</th>
                <th scope="col">State</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {versions.map(([n, v]) => {
                const state = stateOf(v);
                const num = Number(n);
                return (
                  <tr key={n} data-version={n} data-state={state}>
                    <td>
                      <Link to={href('secrets', { path: `${mount.path}${rel}`, version: n })}>{n}</Link>
                    </td>
                    <td>{fmtTime(v.created_time)}</td>
                    <td>{state}</td>
                    <td class="row-actions">
                      {state === 'live' && (
                        <button type="button" class="small" aria-label={`Delete version ${n}`} disabled={busy} onClick={() => change('delete', num)}>
                          Delete
                        </button>
                      )}
                      {state === 'deleted' && (
                        <button type="button" class="small" aria-label={`Undelete version ${n}`} disabled={busy} onClick={() => change('undelete', num)}>
                          Undelete
                        </button>
                      )}
                      {state !== 'destroyed' && (
                        <button type="button" class="small danger" aria-label={`Destroy version ${n}`} disabled={busy} onClick={() => change('destroy', num)}>
                          Destroy
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      )}
      <Errors error={error} />
    </>
  );
}

export function SecretsPage({ query }: { query: URLSearchParams }) {
  usePageTitle('Secrets');
  return (
    <section>
      <h1>Secrets</h1>
      <NeedsToken>
        <SecretsContent path={query.get('path') ?? ''} version={Number(query.get('version')) || undefined} />
      </NeedsToken>
    </section>
  );
}

function SecretsContent({ path, version }: { path: string; version: number | undefined }) {
  const [mounts, setMounts] = useState<MountInfo[] | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const reload = usePoll(async () => {
    try {
      setMounts(mountsOf((await api<{ data: Record<string, Mount> }>('GET', 'sys/mounts')).data));
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, 0);

  const mount = mounts
    ?.filter((m) => path.startsWith(m.path))
    .sort((a, b) => b.path.length - a.path.length)[0];
  const rel = mount ? path.slice(mount.path.length) : '';
  let body;
  if (!path) {
    body = mounts && (
      <>
        <MountList mounts={mounts} onChange={reload} />
        <EnableMount onDone={reload} />
      </>
    );
  } else if (mounts && !mount) {
    body = <Errors error={new ApiError(404, [`no secrets engine is mounted at "${path}"`])} />;
  } else if (mount && !browsable(mount)) {
    body = <Notice>{mount.path} is a {mount.type} engine: the console browses KV engines only.</Notice>;
  } else if (mount && (rel === '' || rel.endsWith('/'))) {
    body = <Folder key={path} mount={mount} rel={rel} />;
  } else if (mount) {
    body = mount.version === 2 ? <SecretV2 key={path} mount={mount} rel={rel} version={version} /> : <SecretV1 key={path} mount={mount} rel={rel} />;
  }
  return (
    <>
      {path && <Crumbs path={path} />}
      <Errors error={loadError} />
      {body}
    </>
  );
}
