import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { UsageError } from '../flags.js';
import { json, table } from '../output.js';

type Body = Record<string, unknown>;

function keyRows(k: Body, installLabel: string): Array<[string, unknown]> {
  return [
    ['Key Term', k.term],
    [installLabel, k.install_time],
    ['Encryption Count', k.encryptions],
  ];
}

function progressBar(s: Body): string {
  const total = Number(s.total) || 0;
  const done = Number(s.done) || 0;
  const fraction = total ? done / total : 1;
  const width = 30;
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1)}% ${done}/${total} entries, ${String(s.rate)}/s`;
}

/** Starts a rewrap and follows it with a progress bar until it ends. */
async function rewrap(client: ApiClient, io: Io, json_: boolean, pollMs: number): Promise<number> {
  await client.request('POST', 'sys/rotate/rewrap');
  const tty = process.stderr.isTTY;
  let s: Body = {};
  let lastLine = 0;
  for (;;) {
    s = ((await client.request('GET', 'sys/rotate/rewrap')).body?.data as Body) ?? {};
    if (!json_) {
      if (tty) process.stderr.write(`\r${progressBar(s)}`);
      else if (Date.now() - lastLine > 2000 || s.state !== 'running') {
        io.err(progressBar(s));
        lastLine = Date.now();
      }
    }
    if (s.state !== 'running') break;
    await sleep(pollMs);
  }
  if (tty && !json_) process.stderr.write('\n');
  if (json_) io.out(json(s));
  else if (s.state === 'done') io.out(`Success! Rewrapped ${String(s.rewrapped)} of ${String(s.total)} entries to term ${String(s.target_term)}.`);
  else io.err(`Rewrap ended in state "${String(s.state)}"${s.error ? `: ${String(s.error)}` : ''}.`);
  return s.state === 'done' ? 0 : 1;
}

export const operatorRotateCommand: Command = {
  name: 'operator rotate',
  synopsis: 'Install a new encryption-key term (-rewrap re-encrypts old values to it; -prune retires unused terms)',
  flags: {
    ...CLIENT_FLAGS,
    rewrap: { kind: 'bool', help: 're-encrypt every value still under an older term, with a progress bar', default: false },
    prune: { kind: 'bool', help: 'remove every older term that no stored value uses any more', default: false },
    'poll-interval': { kind: 'int', help: 'milliseconds between progress updates with -rewrap', default: 500 },
  },
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    if (flags.rewrap && flags.prune) throw new UsageError('-rewrap and -prune cannot be combined: rewrap first, then prune');
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    if (flags.rewrap) return rewrap(client, io, format === 'json', flags['poll-interval'] as number);
    if (flags.prune) {
      const pruned = ((await client.request('POST', 'sys/rotate/prune')).body?.pruned as number[]) ?? [];
      io.out(format === 'json' ? json({ pruned }) : pruned.length ? `Success! Pruned terms: ${pruned.join(', ')}` : 'Nothing to prune: only the active term is left.');
      return 0;
    }
    await client.request('PUT', 'sys/rotate');
    const { body } = await client.request('GET', 'sys/key-status');
    const k = (body?.data as Body) ?? {};
    io.out(format === 'json' ? json(k) : `Success! Rotated key\n\n${table(keyRows(k, 'Installation Time').slice(0, 2))}`);
    return 0;
  },
};

export const operatorKeyStatusCommand: Command = {
  name: 'operator key-status',
  synopsis: 'Print the active encryption-key term, its install time and encryption count',
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    const format = outputFormat(flags, io.env);
    const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/key-status');
    const k = (body?.data as Body) ?? {};
    io.out(format === 'json' ? json(k) : table(keyRows(k, 'Install Time')));
    return 0;
  },
};
