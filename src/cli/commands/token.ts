import { ApiClient, CLIENT_FLAGS, outputFormat, type OutputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { splitPair, UsageError } from '../flags.js';
import { formatted, table } from '../output.js';
import { printSecret } from '../secret.js';

type Body = Record<string, unknown>;

function authTable(auth: Body): string {
  return table([
    ['token', auth.client_token],
    ['token_accessor', auth.accessor],
    ['token_duration', auth.lease_duration === 0 ? '∞' : `${String(auth.lease_duration)}s`],
    ['token_renewable', auth.renewable],
    ['token_policies', auth.token_policies],
    ['policies', auth.policies],
  ]);
}

function print(io: Io, format: OutputFormat, body: Body | undefined, render: (b: Body) => string): void {
  io.out(format !== 'table' ? formatted(format, body) : render(body ?? {}));
}

const create: Command = {
  flags: {
    ...CLIENT_FLAGS,
    policy: { kind: 'list', help: 'policy for the token (repeat or comma-separate)' },
    ttl: { kind: 'string', help: 'time to live, e.g. 1h', default: '' },
    'explicit-max-ttl': { kind: 'string', help: 'hard limit renewals cannot pass', default: '' },
    period: { kind: 'string', help: 'make it a periodic token: each renewal gives it this long again, with no maximum', default: '' },
    role: { kind: 'string', help: 'create it from this token role (auth/token/create/ROLE)', default: '' },
    type: { kind: 'string', help: 'token type: service or default (batch tokens are refused)', default: '' },
    'use-limit': { kind: 'int', help: 'number of uses (0 = unlimited)', default: 0 },
    renewable: { kind: 'bool', help: 'allow renewal', default: true },
    orphan: { kind: 'bool', help: 'create without a parent (needs sudo)', default: false },
    'no-default-policy': { kind: 'bool', help: 'leave out the default policy', default: false },
    'display-name': { kind: 'string', help: 'name shown in lookups and audit', default: '' },
    metadata: { kind: 'list', help: 'key=value metadata (repeatable)' },
    field: { kind: 'string', help: 'print only this field (token, token_accessor, ...), piped without a newline', default: '' },
  },
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}": token create takes flags only`);
    const meta: Record<string, string> = {};
    for (const kv of flags.metadata as string[]) {
      const [key, value] = splitPair(kv, '-metadata ');
      meta[key] = value;
    }
    const format = outputFormat(flags, io.env);
    const policies = flags.policy as string[];
    const role = (flags.role as string).replace(/^\/+|\/+$/g, '');
    const path = role ? `auth/token/create/${role}` : flags.orphan ? 'auth/token/create-orphan' : 'auth/token/create';
    const { body } = await ApiClient.fromFlags(flags, io.env).request('POST', path, {
      policies: policies.length ? policies : undefined,
      ttl: flags.ttl || undefined,
      explicit_max_ttl: flags['explicit-max-ttl'] || undefined,
      period: flags.period || undefined,
      type: flags.type || undefined,
      no_parent: role && flags.orphan ? true : undefined,
      num_uses: flags['use-limit'],
      renewable: flags.renewable,
      no_default_policy: flags['no-default-policy'],
      display_name: flags['display-name'] || undefined,
      meta: Object.keys(meta).length ? meta : undefined,
    });
    return printSecret(io, format, flags.field as string, body ?? {});
  },
};

/** `token capabilities [TOKEN] PATH`: what a token (the current one when none is given) may do on a path. */
const capabilities: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length < 1 || args.length > 2) throw new UsageError(`give a path, or a token and a path (expected 1-2 arguments, got ${args.length})`);
    const [token, path] = args.length === 2 ? [args[0], args[1]!] : [undefined, args[0]!];
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    const paths = [path.replace(/^\/+/, '')];
    const { body } = token ? await client.request('POST', 'sys/capabilities', { token, paths }) : await client.request('POST', 'sys/capabilities-self', { paths });
    const data = (body?.data as Body | undefined) ?? body ?? {};
    const found = (data.capabilities ?? data[paths[0]!]) as string[] | undefined;
    if (!Array.isArray(found)) {
      io.err('No capabilities found');
      return 1;
    }
    io.out(format === 'table' ? [...found].sort().join(', ') : formatted(format, found));
    return 0;
  },
};

const lookup: Command = {
  flags: { ...CLIENT_FLAGS, accessor: { kind: 'bool', help: 'the argument is an accessor', default: false } },
  async run({ flags, args }, io) {
    if (args.length > 1) throw new UsageError('give at most one token or accessor');
    const client = ApiClient.fromFlags(flags, io.env);
    const res = flags.accessor
      ? await client.request('POST', 'auth/token/lookup-accessor', { accessor: args[0] ?? '' })
      : args[0]
        ? await client.request('POST', 'auth/token/lookup', { token: args[0] })
        : await client.request('GET', 'auth/token/lookup-self');
    print(io, outputFormat(flags, io.env), res.body, (b) => {
      const d = (b.data as Body) ?? {};
      return table(Object.keys(d).sort().map((k) => [k, d[k]] as const));
    });
    return 0;
  },
};

const renew: Command = {
  flags: { ...CLIENT_FLAGS, increment: { kind: 'string', help: 'new TTL, e.g. 30m', default: '' } },
  async run({ flags, args }, io) {
    const client = ApiClient.fromFlags(flags, io.env);
    const increment = (flags.increment as string) || undefined;
    const res = args[0]
      ? await client.request('POST', 'auth/token/renew', { token: args[0], increment })
      : await client.request('POST', 'auth/token/renew-self', { increment });
    print(io, outputFormat(flags, io.env), res.body, (b) => authTable((b.auth as Body) ?? {}));
    return 0;
  },
};

const revoke: Command = {
  flags: {
    ...CLIENT_FLAGS,
    accessor: { kind: 'bool', help: 'the argument is an accessor', default: false },
    self: { kind: 'bool', help: 'revoke the current token', default: false },
    mode: { kind: 'string', help: '"orphan" to keep the children', default: '' },
  },
  async run({ flags, args }, io) {
    const client = ApiClient.fromFlags(flags, io.env);
    if (flags.self) await client.request('POST', 'auth/token/revoke-self');
    else if (!args[0]) throw new UsageError('give the token (or accessor) to revoke, or -self');
    else if (flags.accessor) await client.request('POST', 'auth/token/revoke-accessor', { accessor: args[0] });
    else if (flags.mode === 'orphan') await client.request('POST', 'auth/token/revoke-orphan', { token: args[0] });
    else if (flags.mode) throw new UsageError('-mode takes "orphan"');
    else await client.request('POST', 'auth/token/revoke', { token: args[0] });
    io.out('Success! Revoked token (if it existed)');
    return 0;
  },
};

export const tokenCommands: Record<string, Command> = { create, lookup, renew, revoke, capabilities };
