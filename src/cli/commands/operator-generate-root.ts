import { readFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { formatted, table } from '../output.js';
import { promptHidden } from '../prompt.js';

type Body = Record<string, unknown>;

function rows(s: Body): Array<[string, unknown]> {
  const r: Array<[string, unknown]> = [
    ['Nonce', s.nonce || 'n/a'],
    ['Started', s.started],
    ['Progress', `${String(s.progress)}/${String(s.required)}`],
    ['Complete', s.complete],
  ];
  if (s.encoded_token) r.push(['Encoded Token', s.encoded_token]);
  if (s.otp) r.push(['OTP', s.otp]);
  r.push(['OTP Length', s.otp_length]);
  if (s.pgp_fingerprint) r.push(['PGP Fingerprint', s.pgp_fingerprint]);
  return r;
}

export const operatorGenerateRootCommand: Command = {
  flags: {
    ...CLIENT_FLAGS,
    init: { kind: 'bool', help: 'start an attempt (the server makes and prints the OTP unless -otp or -pgp-key)', default: false },
    'generate-otp': { kind: 'bool', help: 'print a fresh one-time password, to give with -init -otp', default: false },
    otp: { kind: 'string', help: 'OTP to use with -init, or to decode with -decode', default: '' },
    'pgp-key': { kind: 'string', help: 'file with a PGP public key to encrypt the new token to (with -init)', default: '' },
    nonce: { kind: 'string', help: 'nonce of the attempt; read from the server when omitted', default: '' },
    decode: { kind: 'string', help: 'encoded token to decode with -otp', default: '' },
    status: { kind: 'bool', help: 'print the attempt status', default: false },
    cancel: { kind: 'bool', help: 'cancel the attempt', default: false },
  },
  async run({ flags, args }, io) {
    const format = outputFormat(flags, io.env);
    // The OTP helpers live with the server's root generation (which loads PGP): loaded only for them.
    if (flags['generate-otp']) {
      const { generateOtp } = await import('../../core/generate-root.js');
      io.out(generateOtp());
      return 0;
    }
    if (flags.decode) {
      if (!flags.otp) throw new UsageError('-decode needs -otp');
      const { decodeWithOtp } = await import('../../core/generate-root.js');
      io.out(decodeWithOtp(flags.decode as string, flags.otp as string));
      return 0;
    }
    const client = ApiClient.fromFlags(flags, io.env);
    if (flags.cancel) {
      await client.request('DELETE', 'sys/generate-root/attempt');
      io.out('Success! Root token generation canceled (if it was started)');
      return 0;
    }
    if (flags.status) {
      const { body } = await client.request('GET', 'sys/generate-root/attempt');
      io.out(format !== 'table' ? formatted(format, body) : table(rows(body ?? {})));
      return 0;
    }
    if (flags.init) {
      const pgpFile = flags['pgp-key'] as string;
      const pgpKey = pgpFile ? (await readFile(pgpFile, 'utf8').catch((e: Error) => Promise.reject(new UsageError(`cannot read ${pgpFile}: ${e.message}`)))).trim() : undefined;
      const { body } = await client.request('PUT', 'sys/generate-root/attempt', { pgp_key: pgpKey, otp: (flags.otp as string) || undefined });
      io.out(format !== 'table' ? formatted(format, body) : table(rows(body ?? {})));
      return 0;
    }
    if (args.length > 1) throw new UsageError('give at most one key share');
    const nonce = (flags.nonce as string) || String((await client.request('GET', 'sys/generate-root/attempt')).body?.nonce ?? '');
    const key = args[0] ?? (await promptHidden('Unseal Key (will be hidden): ', flags));
    if (!key) throw new UsageError('no key share given');
    const { body } = await client.request('PUT', 'sys/generate-root/update', { key, nonce });
    io.out(format !== 'table' ? formatted(format, body) : table(rows(body ?? {})));
    return 0;
  },
};
