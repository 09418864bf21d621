// Plain HTTP helpers, free of vitest so benchmarks can use them too.

export interface Reply {
  status: number;
  body: any;
  /** The X-Keyward-Node header: which node served the request. */
  node?: string;
}

/** One HTTP call against a running server, returning status and parsed body. */
export async function call(base: string, method: string, path: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers['X-Vault-Token'] = opts.token;
  let body: string | undefined = opts.raw;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(`${base}/v1/${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, node: res.headers.get('x-keyward-node') ?? undefined };
}

