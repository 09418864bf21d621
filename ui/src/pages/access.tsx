import { useState } from 'preact/hooks';
import { api, apiPath } from '../api';
import { CopyButton, Errors, Field, fmtTime, NeedsToken, Notice, useAction, usePageTitle, usePoll } from '../components';

const BUILT_IN = new Set(['root', 'default']);

function PolicyEditor({ name, onSaved, onDeleted }: { name: string | undefined; onSaved: (name: string) => void; onDeleted: () => void }) {
  const [newName, setNewName] = useState('');
  const [doc, setDoc] = useState('');
  const [loadError, setLoadError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const [run, busy, error] = useAction();
  usePoll(
    async () => {
      setSaved(false);
      if (!name) {
        setDoc('path "secret/*" {\n  capabilities = ["read", "list"]\n}\n');
        return;
      }
      try {
        setDoc((await api<{ data: { policy: string } }>('GET', `sys/policies/acl/${apiPath(name)}`)).data.policy);
        setLoadError(undefined);
      } catch (err) {
        setLoadError(err);
      }
    },
    0,
    [name],
  );
  const target = name ?? newName.trim();
  const save = (e: Event) => {
    e.preventDefault();
    setSaved(false);
    void run(async () => {
      await api('PUT', `sys/policies/acl/${apiPath(target)}`, { policy: doc });
      setSaved(true);
      onSaved(target);
    });
  };
  const remove = () =>
    run(async () => {
      if (!name || !confirm(`Delete policy ${name}? Tokens that carry it lose what it granted.`)) return;
      await api('DELETE', `sys/policies/acl/${apiPath(name)}`);
      onDeleted();
    });
  const readOnly = name === 'root';
  return (
    <form onSubmit={save} aria-labelledby="policy-h" class="policy-editor">
      <h3 id="policy-h">{name ? `Policy ${name}` : 'New policy'}</h3>
      <Errors error={loadError} />
      {!name && (
        <Field id="policy-name" label="Name" hint="Lower-case letters, digits and . _ @ -">
          {(p) => <input {...p} type="text" required value={newName} onInput={(e) => setNewName((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
      )}
      <div class="field">
        <label for="policy-doc">Policy (HCL or JSON)</label>
        <textarea
          id="policy-doc"
          rows={10}
          spellcheck={false}
          readOnly={readOnly}
          required
          value={doc}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'policy-errors' : undefined}
          onInput={(e) => setDoc((e.currentTarget as HTMLTextAreaElement).value)}
        />
        <Errors error={error} id="policy-errors" />
      </div>
      {!readOnly && (
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Save policy
          </button>
          {name && !BUILT_IN.has(name) && (
            <button type="button" class="danger" disabled={busy} onClick={remove}>
              Delete policy
            </button>
          )}
        </div>
      )}
      {saved && <Notice kind="ok">Policy {target} saved.</Notice>}
    </form>
  );
}

function Policies() {
  const [names, setNames] = useState<string[] | undefined>();
  const [selected, setSelected] = useState<string | undefined>();
  const [creating, setCreating] = useState(false);
  const [loadError, setLoadError] = useState<unknown>();
  const reload = usePoll(async () => {
    try {
      setNames((await api<{ data: { keys: string[] } }>('GET', 'sys/policies/acl?list=true')).data.keys);
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, 0);
  return (
    <section class="card" aria-labelledby="policies-h">
      <h2 id="policies-h">Policies</h2>
      <Errors error={loadError} />
      <div class="split">
        <ul class="pick" id="policy-list">
          {names?.map((n) => (
            <li key={n}>
              <button
                type="button"
                class={`link${selected === n && !creating ? ' current' : ''}`}
                aria-pressed={selected === n && !creating}
                onClick={() => {
                  setCreating(false);
                  setSelected(n);
                }}
              >
                {n}
              </button>
            </li>
          ))}
          <li>
            <button type="button" class="small" onClick={() => setCreating(true)}>
              New policy
            </button>
          </li>
        </ul>
        <div>
          {creating ? (
            <PolicyEditor
              key="new"
              name={undefined}
              onSaved={(n) => {
                setCreating(false);
                setSelected(n);
                reload();
              }}
              onDeleted={reload}
            />
          ) : selected ? (
            <PolicyEditor
              key={selected}
              name={selected}
              onSaved={reload}
              onDeleted={() => {
                setSelected(undefined);
                reload();
              }}
            />
          ) : (
            <p>Pick a policy to read or edit it.</p>
          )}
        </div>
      </div>
    </section>
  );
}

interface TokenLookup {
  accessor: string;
  display_name: string;
  policies: string[];
  ttl: number;
  expire_time: string | null;
  creation_time: number;
  num_uses: number;
  orphan: boolean;
  renewable: boolean;
  path: string;
}

function Lookup({ info }: { info: TokenLookup }) {
  return (
    <dl class="facts" id="token-info">
      <div class="row">
        <dt>Display name</dt>
        <dd>{info.display_name}</dd>
      </div>
      <div class="row">
        <dt>Accessor</dt>
        <dd>
          <code>{info.accessor}</code>
        </dd>
      </div>
      <div class="row">
        <dt>Policies</dt>
        <dd id="token-policies">{info.policies.join(', ')}</dd>
      </div>
      <div class="row">
        <dt>TTL</dt>
        <dd>{info.ttl ? `${info.ttl} s (expires ${fmtTime(info.expire_time ?? undefined)})` : 'never expires'}</dd>
      </div>
      <div class="row">
        <dt>Uses left</dt>
        <dd>{info.num_uses || 'unlimited'}</dd>
      </div>
      <div class="row">
        <dt>Orphan / renewable</dt>
        <dd>
          {info.orphan ? 'orphan' : 'child'} / {info.renewable ? 'renewable' : 'not renewable'}
        </dd>
      </div>
      <div class="row">
        <dt>Created</dt>
        <dd>
          {fmtTime(new Date(info.creation_time * 1000).toISOString())} at {info.path}
        </dd>
      </div>
    </dl>
  );
}

function Tokens() {
  const [lookupValue, setLookupValue] = useState('');
  const [by, setBy] = useState<'token' | 'accessor'>('token');
  const [info, setInfo] = useState<TokenLookup | undefined>();
  const [lookRun, looking, lookError] = useAction();
  const [policies, setPolicies] = useState('default');
  const [ttl, setTtl] = useState('1h');
  const [displayName, setDisplayName] = useState('');
  const [numUses, setNumUses] = useState('0');
  const [orphan, setOrphan] = useState(false);
  // A new token is shown once, as the API returned it, and kept nowhere.
  const [created, setCreated] = useState<{ client_token: string; accessor: string; policies: string[] } | undefined>();
  const [createRun, creating, createError] = useAction();
  const [revokeValue, setRevokeValue] = useState('');
  const [revokeBy, setRevokeBy] = useState<'token' | 'accessor'>('token');
  const [revoked, setRevoked] = useState(false);
  const [revokeRun, revoking, revokeError] = useAction();

  const lookup = (e: Event) => {
    e.preventDefault();
    setInfo(undefined);
    void lookRun(async () => {
      const v = lookupValue.trim();
      const r = !v
        ? await api<{ data: TokenLookup }>('GET', 'auth/token/lookup-self')
        : by === 'token'
          ? await api<{ data: TokenLookup }>('POST', 'auth/token/lookup', { token: v })
          : await api<{ data: TokenLookup }>('POST', 'auth/token/lookup-accessor', { accessor: v });
      setInfo(r.data);
    });
  };
  const create = (e: Event) => {
    e.preventDefault();
    setCreated(undefined);
    void createRun(async () => {
      const body: Record<string, unknown> = {
        policies: policies
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean),
        ttl,
        num_uses: Number(numUses) || 0,
      };
      if (displayName.trim()) body.display_name = displayName.trim();
      const r = await api<{ auth: { client_token: string; accessor: string; policies: string[] } }>('POST', orphan ? 'auth/token/create-orphan' : 'auth/token/create', body);
      setCreated(r.auth);
    });
  };
  const revoke = (e: Event) => {
    e.preventDefault();
    setRevoked(false);
    void revokeRun(async () => {
      const v = revokeValue.trim();
      if (!confirm('Revoke this token and its children?')) return;
      if (revokeBy === 'token') await api('POST', 'auth/token/revoke', { token: v });
      else await api('POST', 'auth/token/revoke-accessor', { accessor: v });
      setRevokeValue('');
      setRevoked(true);
    });
  };

  return (
    <section class="card" aria-labelledby="tokens-h">
      <h2 id="tokens-h">Tokens</h2>
      <div class="grid">
        <form onSubmit={lookup} aria-labelledby="lookup-h">
          <h3 id="lookup-h">Look up</h3>
          <Field id="lookup-by" label="Look up by">
            {(p) => (
              <select {...p} value={by} onChange={(e) => setBy((e.currentTarget as HTMLSelectElement).value as 'token' | 'accessor')}>
                <option value="token">token</option>
                <option value="accessor">accessor</option>
              </select>
            )}
          </Field>
          <Field id="lookup-value" label="Token or accessor" hint="Empty: the token you signed in with.">
            {(p) => (
              <input {...p} type="password" autocomplete="off" value={lookupValue} onInput={(e) => setLookupValue((e.currentTarget as HTMLInputElement).value)} />
            )}
          </Field>
          <div class="actions">
            <button type="submit" disabled={looking}>
              Look up
            </button>
          </div>
          <Errors error={lookError} />
          {info && <Lookup info={info} />}
        </form>
        <form onSubmit={create} aria-labelledby="create-h">
          <h3 id="create-h">Create</h3>
          <Field id="create-policies" label="Policies" hint="Comma-separated; a child token gets only policies its parent has (unless the parent is root).">
            {(p) => <input {...p} type="text" value={policies} onInput={(e) => setPolicies((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <Field id="create-ttl" label="TTL" hint="Such as 30m, 8h or 720h.">
            {(p) => <input {...p} type="text" value={ttl} onInput={(e) => setTtl((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <Field id="create-name" label="Display name (optional)">
            {(p) => <input {...p} type="text" value={displayName} onInput={(e) => setDisplayName((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <Field id="create-uses" label="Number of uses" hint="0 for unlimited.">
            {(p) => <input {...p} type="number" min={0} value={numUses} onInput={(e) => setNumUses((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <div class="check">
            <input id="create-orphan" type="checkbox" checked={orphan} onChange={(e) => setOrphan((e.currentTarget as HTMLInputElement).checked)} />
            <label for="create-orphan">Orphan (no parent; needs sudo)</label>
          </div>
          <div class="actions">
            <button type="submit" class="primary" disabled={creating}>
              Create token
            </button>
          </div>
          <Errors error={createError} />
          {created && (
            <div class="shown-once" id="created-token">
              <Notice kind="warn">Shown once: keyward stores only a hash of the token.</Notice>
              <ul class="secrets">
                <li>
                  <span class="secret-label">Token</span>
                  <code class="secret-value" data-secret="token">
                    {created.client_token}
                  </code>
                  <CopyButton value={created.client_token} what="the new token" />
                </li>
                <li>
                  <span class="secret-label">Accessor</span>
                  <code class="secret-value" data-secret="accessor">
                    {created.accessor}
                  </code>
                </li>
                <li>
                  <span class="secret-label">Policies</span>
                  <span>{created.policies.join(', ')}</span>
                </li>
              </ul>
              <button type="button" class="small" onClick={() => setCreated(undefined)}>
                Clear from this page
              </button>
            </div>
          )}
        </form>
        <form onSubmit={revoke} aria-labelledby="revoke-h">
          <h3 id="revoke-h">Revoke</h3>
          <Field id="revoke-by" label="Revoke by">
            {(p) => (
              <select {...p} value={revokeBy} onChange={(e) => setRevokeBy((e.currentTarget as HTMLSelectElement).value as 'token' | 'accessor')}>
                <option value="token">token</option>
                <option value="accessor">accessor</option>
              </select>
            )}
          </Field>
          <Field id="revoke-value" label="Token or accessor to revoke">
            {(p) => (
              <input {...p} type="password" autocomplete="off" required value={revokeValue} onInput={(e) => setRevokeValue((e.currentTarget as HTMLInputElement).value)} />
            )}
          </Field>
          <div class="actions">
            <button type="submit" class="danger" disabled={revoking}>
              Revoke token
            </button>
          </div>
          {revoked && <Notice kind="ok">Token revoked.</Notice>}
          <Errors error={revokeError} />
        </form>
      </div>
    </section>
  );
}

interface AuditDevice {
  type: string;
  description: string;
  options: Record<string, string>;
}

function Audit() {
  const [devices, setDevices] = useState<Record<string, AuditDevice> | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [path, setPath] = useState('file');
  const [filePath, setFilePath] = useState('');
  const [description, setDescription] = useState('');
  const [run, busy, error] = useAction();
  const reload = usePoll(async () => {
    try {
      setDevices((await api<{ data: Record<string, AuditDevice> }>('GET', 'sys/audit')).data);
      setLoadError(undefined);
    } catch (err) {
      setLoadError(err);
    }
  }, 0);
  const enable = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await api('PUT', `sys/audit/${apiPath(path.trim().replace(/\/+$/, ''))}`, { type: 'file', description, options: { file_path: filePath.trim() } });
      reload();
    });
  };
  const disable = (p: string) =>
    run(async () => {
      if (!confirm(`Disable audit device ${p}?`)) return;
      await api('DELETE', `sys/audit/${apiPath(p.replace(/\/$/, ''))}`);
      reload();
    });
  const list = devices ? Object.entries(devices) : [];
  return (
    <section class="card" aria-labelledby="audit-h">
      <h2 id="audit-h">Audit devices</h2>
      <p class="hint">Listing, enabling and disabling audit devices needs sudo on sys/audit.</p>
      <Errors error={loadError} />
      {devices && list.length === 0 && <p>No audit device is enabled: requests are not audited.</p>}
      {list.length > 0 && (
        <table id="audit-table">
          <caption>Enabled audit devices</caption>
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col">Type</th>
              <th scope="col">Options</th>
              <th scope="col">Description</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.map(([p, d]) => (
              <tr key={p}>
                <td>{p}</td>
                <td>{d.type}</td>
                <td>
                  {Object.entries(d.options ?? {})
                    .map(([k, v]) => `${k}=${v}`)
                    .join(', ')}
                </td>
                <td>{d.description}</td>
                <td>
                  <button type="button" class="small danger" aria-label={`Disable audit device ${p}`} disabled={busy} onClick={() => disable(p)}>
                    Disable
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form onSubmit={enable} aria-labelledby="audit-enable-h" class="narrow">
        <h3 id="audit-enable-h">Enable a file audit device</h3>
        <Field id="audit-path" label="Path">
          {(p) => <input {...p} type="text" required value={path} onInput={(e) => setPath((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
        <Field id="audit-file" label="File path on the server" hint="One JSON line per request and response, strings HMAC-hashed.">
          {(p) => <input {...p} type="text" required value={filePath} onInput={(e) => setFilePath((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
        <Field id="audit-description" label="Description (optional)">
          {(p) => <input {...p} type="text" value={description} onInput={(e) => setDescription((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
        <div class="actions">
          <button type="submit" disabled={busy}>
            Enable audit device
          </button>
        </div>
        <Errors error={error} />
      </form>
    </section>
  );
}

export function AccessPage() {
  usePageTitle('Access');
  return (
    <section>
      <h1>Access</h1>
      <NeedsToken>
        <Policies />
        <Tokens />
        <Audit />
      </NeedsToken>
    </section>
  );
}
