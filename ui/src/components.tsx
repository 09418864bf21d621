import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, token } from './api';
import { href, onLinkClick } from './router';

/** An error reply's messages as the API gave them, announced to screen readers. */
export function Errors({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  const messages = error instanceof ApiError ? error.errors : [error instanceof Error ? error.message : String(error)];
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status})` : '';
  return (
    <div class="errors" role="alert" id={id}>
      <strong>Error{status}:</strong>
      <ul>
        {messages.map((m, i) => (
          <li key={i}>{m}</li>
        ))}
      </ul>
    </div>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'warn' | 'ok'; children: ComponentChildren }) {
  return (
    <div class={`notice notice-${kind}`} role={kind === 'info' ? undefined : 'status'}>
      {children}
    </div>
  );
}

export function Link({ to, children, class: cls }: { to: string; children: ComponentChildren; class?: string }) {
  return (
    <a href={to} class={cls} onClick={onLinkClick}>
      {children}
    </a>
  );
}

/** Runs an async action, keeping its busy flag and its error. */
export function useAction(): [(fn: () => Promise<unknown>) => Promise<boolean>, boolean, unknown, (e: unknown) => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const alive = useRef(true);
  useEffect(() => () => void (alive.current = false), []);
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (err) {
      if (alive.current) setError(err);
      return false;
    } finally {
      if (alive.current) setBusy(false);
    }
  }, []);
  return [run, busy, error, setError];
}

/** Calls `load` now and every `ms` while the page shows; `deps` restart it. Returns a function to reload at once. */
export function usePoll(load: () => Promise<void> | void, ms: number, deps: unknown[] = []): () => void {
  const saved = useRef(load);
  saved.current = load;
  const [kick, setKick] = useState(0);
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        await saved.current();
      } finally {
        if (!stopped && ms > 0) timer = window.setTimeout(tick, ms);
      }
    };
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [ms, kick, ...deps]);
  return useCallback(() => setKick((k) => k + 1), []);
}

export function Progress({ value, max, label, id }: { value: number; max: number; label: string; id?: string }) {
  const pct = max > 0 ? Math.min(100, Math.floor((value / max) * 100)) : 0;
  return (
    <div class="progress" id={id}>
      <progress value={value} max={max || 1} aria-label={label} />
      <span class="progress-text" aria-live="polite">
        {label}: {value} of {max} ({pct}%)
      </span>
    </div>
  );
}

export function copyText(text: string): Promise<boolean> {
  if (!navigator.clipboard) return Promise.resolve(false);
  return navigator.clipboard.writeText(text).then(
    () => true,
    () => false,
  );
}

/** A copy button; `what` completes its accessible name ("Copy unseal key 2"), visible text first. */
export function CopyButton({ value, what }: { value: string; what: string }) {
  const [state, setState] = useState<'' | 'copied' | 'failed'>('');
  return (
    <button type="button" class="small" onClick={async () => setState((await copyText(value)) ? 'copied' : 'failed')}>
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy refused: select it' : 'Copy'}
      <span class="visually-hidden"> {what}</span>
    </button>
  );
}

/** Offers `text` as a file download, made in the page (nothing leaves the browser). */
export function download(filename: string, text: string, type = 'application/json'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export interface Secret {
  label: string;
  value: string;
}

/**
 * Key material shown exactly once: the shares (and a root token) as the API returned them, with
 * copy and download, and a button that drops them from the page. Nothing here stores them.
 */
export function ShownOnce({
  title,
  warning,
  items,
  file,
  onDone,
  children,
}: {
  title: string;
  warning: ComponentChildren;
  items: Secret[];
  file: { name: string; json: unknown };
  onDone: () => void;
  children?: ComponentChildren;
}) {
  return (
    <section class="card shown-once" aria-labelledby="shown-once-title">
      <h2 id="shown-once-title">{title}</h2>
      <Notice kind="warn">{warning}</Notice>
      {children}
      <ol class="secrets">
        {items.map((s) => (
          <li key={s.label}>
            <span class="secret-label">{s.label}</span>
            <code class="secret-value" data-secret={s.label}>
              {s.value}
            </code>
            <CopyButton value={s.value} what={s.label.toLowerCase()} />
          </li>
        ))}
      </ol>
      <div class="actions">
        <button type="button" onClick={() => download(file.name, JSON.stringify(file.json, null, 2))}>
          Download as JSON
        </button>
        <button type="button" class="primary" onClick={onDone}>
          I have stored them: clear from this page
        </button>
      </div>
    </section>
  );
}

/** A page that needs a token: its content, or a sign-in link. */
export function NeedsToken({ children }: { children: ComponentChildren }) {
  if (token()) return <>{children}</>;
  return (
    <Notice>
      This page needs a token. <Link to={href('login', { next: location.pathname + location.search })}>Sign in with a token</Link>.
    </Notice>
  );
}

export function fmtTime(iso: string | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function fmtNum(n: number | undefined): string {
  return n === undefined ? '—' : n.toLocaleString('en-US');
}

export function Field({
  label,
  hint,
  children,
  id,
}: {
  label: string;
  hint?: ComponentChildren;
  children: (props: { id: string; 'aria-describedby'?: string }) => JSX.Element;
  id: string;
}) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children({ id, 'aria-describedby': hint ? `${id}-hint` : undefined })}
      {hint && (
        <div class="hint" id={`${id}-hint`}>
          {hint}
        </div>
      )}
    </div>
  );
}

/** Reads PGP public key files: armored text as it is, binary keys as base64 (both are what the API takes). */
export async function readPgpKeys(files: FileList | null): Promise<string[]> {
  if (!files) return [];
  const out: string[] = [];
  for (const f of Array.from(files)) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    if (text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) out.push(text);
    else {
      let bin = '';
      for (const b of bytes) bin += String.fromCharCode(b);
      out.push(btoa(bin));
    }
  }
  return out;
}

/** The PGP public key files picker the init and rekey forms share. */
export function PgpKeysField({ id, onKeys }: { id: string; onKeys: (keys: string[]) => void }) {
  return (
    <Field
      id={id}
      label="PGP public keys (optional)"
      hint="One file per share, in share order; each new share is encrypted to its key. Armored or binary keys."
    >
      {(p) => <input {...p} type="file" multiple onChange={async (e) => onKeys(await readPgpKeys((e.currentTarget as HTMLInputElement).files))} />}
    </Field>
  );
}

/** Sets a page's title and marks its main heading for focus after navigation. */
export function usePageTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · keyward`;
  }, [title]);
}
