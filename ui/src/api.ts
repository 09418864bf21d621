// Every call the console makes goes through keyward's own /v1 API, with the signed-in token in
// X-Vault-Token: the server's authorization and audit apply exactly as to any other client.

const TOKEN_KEY = 'keyward.token';

/** An error reply: the HTTP status and Vault's `errors` list, shown to the operator as given. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors.join('; '));
  }
}

type Listener = (token: string | undefined) => void;
const listeners = new Set<Listener>();

// The token lives in this tab's sessionStorage (gone when the tab closes) and in memory; nothing
// else the console handles (shares, secrets, new tokens) is ever stored.
let current: string | undefined = readStoredToken();

function readStoredToken(): string | undefined {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function token(): string | undefined {
  return current;
}

export function setToken(value: string | undefined): void {
  current = value || undefined;
  try {
    if (current) sessionStorage.setItem(TOKEN_KEY, current);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (a locked-down browser): the token stays in memory for this page.
  }
  for (const l of listeners) l(current);
}

export function onTokenChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export interface Raw {
  status: number;
  body: any;
}

/** One API call; the reply whatever its status (for endpoints whose error replies carry data). */
export async function callRaw(method: string, path: string, body?: unknown, as: string | undefined = current): Promise<Raw> {
  const headers: Record<string, string> = {};
  if (as) headers['X-Vault-Token'] = as;
  let payload: string | undefined;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(`/v1/${path}`, { method, headers, body: payload, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (err) {
    throw new ApiError(0, [`keyward did not answer: ${(err as Error).message}`]);
  }
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

/** One API call: the parsed body of a 2xx reply (undefined for 204), or an ApiError with the server's messages. */
export async function api<T = any>(method: string, path: string, body?: unknown, as?: string): Promise<T> {
  const r = await callRaw(method, path, body, as ?? current);
  if (r.status >= 200 && r.status < 300) return r.body as T;
  throw errorOf(r);
}

export function errorOf(r: Raw): ApiError {
  const errors = r.body && Array.isArray(r.body.errors) && r.body.errors.length ? (r.body.errors as unknown[]).map(String) : [];
  if (errors.length === 0) errors.push(r.status === 404 ? 'not found' : `request failed with HTTP ${r.status}`);
  return new ApiError(r.status, errors);
}

/** An API path from segments the operator typed: each segment URL-encoded, the slashes kept. */
export function apiPath(...parts: string[]): string {
  return parts
    .join('/')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/')
    .replace(/\/{2,}/g, '/');
}

// ---- The seal status, shared: whichever page reads it last updates the header's badge too ----

type SealListener = (s: SealStatus) => void;
const sealListeners = new Set<SealListener>();

export function onSealStatus(l: SealListener): () => void {
  sealListeners.add(l);
  return () => sealListeners.delete(l);
}

/** Passes on a seal status the API just gave (seal-status, or an unseal's reply). */
export function announceSeal(s: SealStatus): SealStatus {
  for (const l of sealListeners) l(s);
  return s;
}

export async function sealStatus(): Promise<SealStatus> {
  return announceSeal(await api<SealStatus>('GET', 'sys/seal-status'));
}

// ---- Reply shapes (the subset the console reads) ----

export interface SealStatus {
  type: string;
  initialized: boolean;
  sealed: boolean;
  t: number;
  n: number;
  progress: number;
  nonce: string;
  version: string;
  storage_type?: string;
  cluster_name?: string;
  cluster_id?: string;
  init_pending?: boolean;
  rekey_pending?: { nonce: string; t: number; n: number };
}

export interface RekeyStatus {
  nonce: string;
  started: boolean;
  t: number;
  n: number;
  progress: number;
  required: number;
  pgp_fingerprints: string[] | null;
  backup: boolean;
  verification_required: boolean;
  verification_nonce?: string;
  completion_pending?: boolean;
}

export interface RekeyResult {
  complete: true;
  nonce: string;
  keys: string[];
  keys_base64: string[];
  pgp_fingerprints: string[] | null;
  backup: boolean;
  verification_required: boolean;
  verification_nonce?: string;
}

export interface VerifyStatus {
  nonce: string;
  started: boolean;
  t: number;
  n: number;
  progress: number;
}

export interface Term {
  term: number;
  install_time: string;
  encryptions: number;
  values: number;
  active: boolean;
}

export interface RewrapStatus {
  state: 'idle' | 'running' | 'done' | 'canceled' | 'failed';
  done: number;
  total: number;
  rewrapped: number;
  rate: number;
  started_at: string;
  finished_at: string;
  target_term: number;
  error: string;
}

export interface Leader {
  ha_enabled: boolean;
  is_self: boolean;
  active_time: string;
  leader_address: string;
}

export interface Health {
  initialized: boolean;
  sealed: boolean;
  standby: boolean;
  server_time_utc: number;
  version: string;
  cluster_name?: string;
  cluster_id?: string;
}

export interface Mount {
  type: string;
  description: string;
  options: { version?: string } | null;
}
