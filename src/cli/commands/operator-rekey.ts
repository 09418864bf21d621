import { readFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat, type OutputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { type FlagValues, UsageError } from '../flags.js';
import { formatted, table } from '../output.js';
import { promptHidden } from '../prompt.js';

type Body = Record<string, unknown>;

function statusRows(s: Body): Array<[string, unknown]> {
  const rows: Array<[string, unknown]> = [
    ['Nonce', s.nonce || 'n/a'],
    ['Started', s.started],
    ['Rekey Progress', `${String(s.progress)}/${String(s.required)}`],
    ['New Shares', s.n],
    ['New Threshold', s.t],
    ['Verification Required', s.verification_required],
  ];
  if (s.verification_nonce) rows.push(['Verification Nonce', s.verification_nonce]);
  if (s.completion_pending) {
    rows.push(['Completion Pending', `the new shares were handed out; unseal with ${String(s.t)} of them to finish the rekey, or cancel it (-cancel, with a sudo token) to keep the current shares`]);
  }
  if (s.pgp_fingerprints) rows.push(['PGP Fingerprints', s.pgp_fingerprints], ['Backup', s.backup]);
  return rows;
}

function verifyRows(s: Body): Array<[string, unknown]> {
  return [
    ['Verification Nonce', s.nonce],
    ['Started', s.started],
    ['Verification Progress', `${String(s.progress)}/${String(s.t)}`],
    ['New Shares', s.n],
    ['New Threshold', s.t],
  ];
}

/** `-pgp-keys=a.asc,b.asc`: each file holds a base64 binary key (Vault's format) or an armored one. */
async function readPgpKeys(list: string): Promise<string[]> {
  if (!list) return [];
  const keys: string[] = [];
  for (const file of list.split(',').map((f) => f.trim())) {
    if (!file) continue;
    try {
      keys.push((await readFile(file, 'utf8')).trim());
    } catch (err) {
      throw new UsageError(`cannot read PGP key file "${file}": ${(err as Error).message}`);
    }
  }
  return keys;
}

function printCompletion(io: Io, format: OutputFormat, body: Body, threshold: number): void {
  if (format !== 'table') {
    io.out(formatted(format, body));
    return;
  }
  const keys = body.keys_base64 as string[];
  const lines = keys.map((k, i) => `Key ${i + 1}: ${k}`);
  if (body.pgp_fingerprints) lines.push('', ...(body.pgp_fingerprints as string[]).map((f, i) => `Key ${i + 1} fingerprint: ${f}`));
  lines.push('', `Operation nonce: ${String(body.nonce)}`, '');
  if (body.verification_required) {
    lines.push(
      `keyward has been rekeyed with ${keys.length} key shares and a key threshold of ${threshold}, but the switch waits for verification:`,
      `until ${threshold} of the new keys are given with "keyward operator rekey -verify -nonce=${String(body.verification_nonce)}",`,
      'the old keys keep working and the new ones do not.',
    );
  } else {
    lines.push(
      `keyward unseal keys rekeyed with ${keys.length} key shares and a key threshold of ${threshold}. Please`,
      'securely distribute the key shares printed above. When keyward is re-sealed,',
      `restarted, or stopped, you must supply at least ${threshold} of these keys to unseal it`,
      'before it can start servicing requests; the old keys no longer work.',
    );
  }
  io.out(lines.join('\n'));
}

async function run({ flags, args }: { flags: FlagValues; args: string[] }, io: Io): Promise<number> {
  const format = outputFormat(flags, io.env);
  const client = ApiClient.fromFlags(flags, io.env);
  const verify = flags.verify === true;
  const path = verify ? 'sys/rekey/verify' : 'sys/rekey/init';
  const modes = ['init', 'cancel', 'status', 'backup-retrieve', 'backup-delete'].filter((m) => flags[m] === true);
  if (modes.length > 1) throw new UsageError(`-${modes.join(' and -')} cannot be combined`);
  if (args.length > 1) throw new UsageError('give at most one key share');

  if (modes[0] === 'init') {
    const pgpKeys = await readPgpKeys(flags['pgp-keys'] as string);
    const { body } = await client.request('PUT', 'sys/rekey/init', {
      secret_shares: flags['key-shares'],
      secret_threshold: flags['key-threshold'],
      pgp_keys: pgpKeys.length ? pgpKeys : undefined,
      backup: flags.backup === true,
      require_verification: verify,
    });
    io.out(format !== 'table' ? formatted(format, body) : table(statusRows(body ?? {})));
    return 0;
  }
  if (modes[0] === 'cancel') {
    await client.request('DELETE', path);
    io.out(format !== 'table' ? formatted(format, {}) : verify ? 'Success! Canceled rekey verification (if it was started)' : 'Success! Canceled rekeying (if it was started)');
    return 0;
  }
  if (modes[0] === 'status') {
    const { body } = await client.request('GET', path);
    io.out(format !== 'table' ? formatted(format, body) : table((verify ? verifyRows : statusRows)(body ?? {})));
    return 0;
  }
  if (modes[0] === 'backup-retrieve') {
    const { body } = await client.request('GET', 'sys/rekey/backup');
    const data = (body?.data as Body) ?? {};
    if (format !== 'table') io.out(formatted(format, body));
    else {
      const keys = (data.keys_base64 as Record<string, string[]>) ?? {};
      io.out(table([['Nonce', data.nonce], ...Object.entries(keys).map(([fp, ks]) => [fp, ks.join(', ')] as [string, unknown])]));
    }
    return 0;
  }
  if (modes[0] === 'backup-delete') {
    await client.request('DELETE', 'sys/rekey/backup');
    io.out(format !== 'table' ? formatted(format, {}) : 'Success! Deleted the rekey backup (if it existed)');
    return 0;
  }

  // Giving a share: to the rekey itself, or with -verify to the verification of the new shares.
  let nonce = flags.nonce as string;
  const before = (await client.request('GET', path)).body ?? {};
  if (!nonce) nonce = String(before.nonce ?? '');
  const key = args[0] ?? (await promptHidden(verify ? 'New unseal key (will be hidden): ' : 'Rekey operation unseal key (will be hidden): ', flags));
  if (!key) throw new UsageError('no key share given');
  const { body } = await client.request('PUT', verify ? 'sys/rekey/verify' : 'sys/rekey/update', { key, nonce });
  const result = body ?? {};
  if (verify) {
    if (result.complete) {
      io.out(format !== 'table' ? formatted(format, result) : `Success! Rekey verification was successful. The new keys are now in use.\n\nVerification nonce: ${String(result.nonce)}`);
    } else io.out(format !== 'table' ? formatted(format, result) : table(verifyRows(result)));
    return 0;
  }
  if (result.complete) printCompletion(io, format, result, Number(before.t));
  else io.out(format !== 'table' ? formatted(format, result) : table(statusRows(result)));
  return 0;
}

export const operatorRekeyCommand: Command = {
  flags: {
    ...CLIENT_FLAGS,
    init: { kind: 'bool', help: 'start a rekey', default: false },
    'key-shares': { kind: 'int', help: 'number of new shares (with -init)', default: 5 },
    'key-threshold': { kind: 'int', help: 'number of new shares needed to unseal (with -init)', default: 3 },
    'pgp-keys': { kind: 'string', help: 'comma-separated files with PGP public keys, one per new share (with -init)', default: '' },
    backup: { kind: 'bool', help: 'keep the PGP-encrypted new shares in the barrier (with -init and -pgp-keys)', default: false },
    verify: {
      kind: 'bool',
      help: 'with -init: switch only after a threshold of the new shares is given back; otherwise: give a new share to (or with -status/-cancel, act on) that verification',
      default: false,
    },
    nonce: { kind: 'string', help: 'nonce of the rekey (or, with -verify, of its verification); read from the server when omitted', default: '' },
    cancel: { kind: 'bool', help: 'cancel the rekey (or with -verify, reset the verification)', default: false },
    status: { kind: 'bool', help: 'print the rekey (or with -verify, verification) status', default: false },
    'backup-retrieve': { kind: 'bool', help: 'print the PGP-encrypted backup of the new shares', default: false },
    'backup-delete': { kind: 'bool', help: 'delete the backup of the new shares', default: false },
    target: { kind: 'string', help: 'what to rekey; only "barrier" exists here', default: 'barrier' },
  },
  async run(parsed, io) {
    if (parsed.flags.target !== 'barrier') throw new UsageError('-target must be "barrier" (keyward has no recovery keys)');
    return run(parsed, io);
  },
};
