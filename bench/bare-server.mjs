// The HTTP baseline: a bare fastify route that returns the same JSON keyward returns for a KV v2
// read, and one that does the same durable file write keyward's file backend does per request.
import { randomBytes } from 'node:crypto';
import { closeSync, fsync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Fastify from 'fastify';

const [port, payloadFile, dataDir] = process.argv.slice(2);
// Plain JavaScript, so its cold start is node's own, as keyward's compiled dist/ is.
const payload = readFileSync(payloadFile, 'utf8');
const fsyncAsync = promisify(fsync);
mkdirSync(join(dataDir, 'tmp'), { recursive: true });

async function durableWrite(target, value) {
  const tmp = join(dataDir, 'tmp', randomBytes(12).toString('hex'));
  const fd = openSync(tmp, 'w', 0o600);
  writeSync(fd, value);
  await fsyncAsync(fd);
  closeSync(fd);
  renameSync(tmp, target);
  const dir = openSync(dataDir, 'r');
  await fsyncAsync(dir);
  closeSync(dir);
}

const app = Fastify({ logger: false });
app.get('/v1/kv/data/app', async (_req, reply) => reply.type('application/json').send(payload));
app.post('/v1/kv/data/*', async (req) => {
  await durableWrite(join(dataDir, `_${req.params['*']}`), Buffer.from(JSON.stringify(req.body)));
  return { data: { version: 1 } };
});
await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log('ready');
