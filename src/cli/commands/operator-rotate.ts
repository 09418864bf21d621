import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, CLIENT_FLAGS, type OutputFormat, outputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { UsageError } from '../flags.js';
import { formatted, table } from '../output.js';

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
async function rewrap(client: ApiClient, io: Io, format: OutputFormat, pollMs: number): Promise<number> {
  const structured = format !== 'table';
  await client.request('POST', 'sys/rotate/rewrap');
  const tty = process.stderr.isTTY;
  let s: Body = {};
  let lastLine = 0;
  for (;;) {
    s = ((await client.request('GET', 'sys/rotate/rewrap')).body?.data as Body) ?? {};
    if (!structured) {
      if (tty) process.stderr.write(`\r${progressBar(s)}`);
      else if (Date.now() - lastLine > 2000 || s.state !== 'running') {
        io.err(progressBar(s));
        lastLine = Date.now();
      }
    }
    if (s.state !== 'running') break;
    await sleep(pollMs);
  }
  if (tty && !structured) process.stderr.write('\n');
  if (structured) io.out(formatted(format, s));
  else if (s.state === 'done') io.out(`Success! Rewrapped ${String(s.rewrapped)} of ${String(s.total)} entries to term ${String(s.target_term)}.`);
  else io.err(`Rewrap ended in state "${String(s.state)}"${s.error ? `: ${String(s.error)}` : ''}.`);
  return s.state === 'done' ? 0 : 1;
}

export const operatorRotateCommand: Command = {
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
    if (flags.rewrap) return rewrap(client, io, format, flags['poll-interval'] as number);
    if (flags.prune) {
      const pruned = ((await client.request('POST', 'sys/rotate/prune')).body?.pruned as number[]) ?? [];
      io.out(format !== 'table' ? formatted(format, { pruned }) : pruned.length ? `Success! Pruned terms: ${pruned.join(', ')}` : 'Nothing to prune: only the active term is left.');
      return 0;
    }
    await client.request('PUT', 'sys/rotate');
    const { body } = await client.request('GET', 'sys/key-status');
    const k = (body?.data as Body) ?? {};
    io.out(format !== 'table' ? formatted(format, k) : `Success! Rotated key\n\n${table(keyRows(k, 'Installation Time').slice(0, 2))}`);
    return 0;
  },
};

export const operatorKeyStatusCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    const format = outputFormat(flags, io.env);
    const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/key-status');
    const k = (body?.data as Body) ?? {};
    io.out(format !== 'table' ? formatted(format, k) : table(keyRows(k, 'Install Time')));
    return 0;
  },
};
