import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The operator console (ui/, bundled by ui/build.mjs into dist-ui/ at the repository root: the
 * same place from src/http/routes and from dist/http/routes).
 */
export const UI_DIR = fileURLToPath(new URL('../../../dist-ui/', import.meta.url));

/**
 * The console's Content-Security-Policy: nothing inline (no script, no style attribute or
 * element), nothing from anywhere but keyward itself, no framing, no form posting elsewhere.
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every console response (the API's own replies keep theirs). */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': UI_CSP,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt']);

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  etag: string;
  /** Content-hashed names (assets/) never change: cached for a year. The rest is revalidated. */
  immutable: boolean;
}

/**
 * Every file of the built console, read once at startup (a few tens of kilobytes). A folder that
 * is missing, or being replaced by a build right now, leaves the console unavailable (404 with
 * how to build it) rather than the server unable to start.
 */
function loadAssets(dir: string): Map<string, Asset> {
  try {
    return readAssets(dir);
  } catch {
    return new Map();
  }
}

function readAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return assets;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (name.startsWith('.')) continue;
      const full = join(d, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const rel = relative(dir, full).split(sep).join('/');
      const ext = extname(name);
      const body = readFileSync(full);
      const gz = COMPRESSIBLE.has(ext) ? gzipSync(body, { level: 9 }) : undefined;
      assets.set(rel, {
        body,
        gzip: gz && gz.length < body.length ? gz : undefined,
        type: TYPES[ext] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: rel.startsWith('assets/'),
      });
    }
  };
  walk(dir);
  if (!assets.has('index.html')) throw new Error('index.html went missing while reading the console');
  return assets;
}

/** Whether a /ui/ path names a page of the console (client-side routing) rather than a file. */
function isPagePath(path: string): boolean {
  const last = path.split('/').pop() ?? '';
  return !last.includes('.');
}

function send(req: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply.headers(SECURITY_HEADERS);
  reply.header('Cache-Control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  reply.header('ETag', asset.etag);
  reply.header('Vary', 'Accept-Encoding');
  const match = req.headers['if-none-match'];
  if (typeof match === 'string' && match.split(',').some((t) => t.trim() === asset.etag)) return reply.code(304).send();
  reply.type(asset.type);
  const accepts = String(req.headers['accept-encoding'] ?? '');
  if (asset.gzip && /\bgzip\b/.test(accepts)) return reply.header('Content-Encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}

function notFound(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(404).headers(SECURITY_HEADERS).type('text/plain; charset=utf-8').send(message);
}

/**
 * The console at /ui/ (and / redirects there). The files carry no secret, so the routes are
 * public and a standby serves them itself; everything the page does goes through /v1 with the
 * operator's token, under the usual authorization and audit. A /ui/ path without a file
 * extension is a page of the console and answers index.html; a missing file answers 404.
 */
export async function uiRoutes(app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? UI_DIR;
  const assets = loadAssets(dir);
  const index = assets.get('index.html');
  // The page's files carry nothing an audit trail needs; what the page does through /v1 is audited as usual.
  const config = { access: 'public' as const, standby: 'serve' as const, audit: false as const };

  const toConsole = (_req: FastifyRequest, reply: FastifyReply) => reply.code(307).header('Location', '/ui/').send();
  app.get('/', { config }, toConsole);
  app.get('/ui', { config }, toConsole);

  app.get<{ Params: { '*': string } }>('/ui/*', { config }, async (req, reply) => {
    if (!index) return notFound(reply, "keyward's console is not built on this server: run scripts/setup.sh (it bundles ui/ into dist-ui/)\n");
    const path = req.params['*'];
    const asset = assets.get(path);
    if (asset) return send(req, reply, asset);
    if (isPagePath(path)) return send(req, reply, index);
    return notFound(reply, `no console file "${path}"\n`);
  });
}
