// `keyward auth enable|disable|list|tune`: Vault's auth-method verbs over sys/auth.
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { onePath, TTL_FLAGS, ttlCell, ttlsOf, withSlash } from '../mount-flags.js';
import { columns, formatted } from '../output.js';

type Body = Record<string, unknown>;

export const authEnable: Command = {
  flags: {
    ...CLIENT_FLAGS,
    path: { kind: 'string', help: 'where to enable it, below auth/ (default: the type)', default: '' },
    description: { kind: 'string', help: 'human-readable description', default: '' },
    ...TTL_FLAGS,
  },
  async run({ flags, args }, io) {
    const type = onePath(args, 'the auth method type (approle, userpass, cert or jwt)');
    const path = withSlash(((flags.path as string) || type).replace(/^\/+/, ''));
    await ApiClient.fromFlags(flags, io.env).request('POST', `sys/auth/${path.slice(0, -1)}`, { type, description: flags.description, config: ttlsOf(flags) });
    io.out(`Success! Enabled ${type} auth method at: ${path}`);
    return 0;
  },
};

export const authDisable: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    const path = withSlash(onePath(args, 'the path of the auth method to disable'));
    await ApiClient.fromFlags(flags, io.env).request('DELETE', `sys/auth/${path.slice(0, -1)}`);
    io.out(`Success! Disabled the auth method (if it existed) at: ${path}`);
    return 0;
  },
};

export const authList: Command = {
  flags: { ...CLIENT_FLAGS, detailed: { kind: 'bool', help: 'also show TTLs, token type, options and UUIDs', default: false } },
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    const format = outputFormat(flags, io.env);
    const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/auth');
    const methods = ((body?.data ?? body) as Record<string, Body> | undefined) ?? {};
    if (format !== 'table') {
      io.out(formatted(format, methods));
      return 0;
    }
    const paths = Object.keys(methods).sort();
    if (flags.detailed) {
      io.out(
        columns(
          ['Path', 'Type', 'Accessor', 'Default TTL', 'Max TTL', 'Token Type', 'Options', 'Description', 'UUID'],
          paths.map((p) => {
            const m = methods[p]!;
            const config = (m.config as Body | undefined) ?? {};
            return [p, m.type, m.accessor, ttlCell(config.default_lease_ttl), ttlCell(config.max_lease_ttl), config.token_type || 'default-service', m.options, m.description || 'n/a', m.uuid];
          }),
        ),
      );
    } else {
      io.out(columns(['Path', 'Type', 'Accessor', 'Description'], paths.map((p) => [p, methods[p]!.type, methods[p]!.accessor, methods[p]!.description || 'n/a'])));
    }
    return 0;
  },
};

export const authTune: Command = {
  flags: { ...CLIENT_FLAGS, description: { kind: 'string', help: 'new description' }, ...TTL_FLAGS },
  async run({ flags, args }, io) {
    const path = withSlash(onePath(args, 'the path of the auth method to tune'));
    const body: Body = { ...ttlsOf(flags) };
    if (flags.description !== undefined) body.description = flags.description;
    if (Object.keys(body).length === 0) throw new UsageError('nothing to tune: give -description, -default-lease-ttl or -max-lease-ttl');
    await ApiClient.fromFlags(flags, io.env).request('POST', `sys/auth/${path.slice(0, -1)}/tune`, body);
    io.out(`Success! Tuned the auth method at: ${path}`);
    return 0;
  },
};
