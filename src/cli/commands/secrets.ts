// `keyward secrets enable|disable|list|tune|move`: Vault's secrets-engine verbs over sys/mounts and sys/remount.
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { OPTIONS, onePath, optionsOf, TTL_FLAGS, ttlCell, ttlsOf, withSlash } from '../mount-flags.js';
import { columns, formatted } from '../output.js';

type Body = Record<string, unknown>;

export const secretsEnable: Command = {
  flags: {
    ...CLIENT_FLAGS,
    path: { kind: 'string', help: 'where to enable it (default: the type)', default: '' },
    description: { kind: 'string', help: 'human-readable description', default: '' },
    ...TTL_FLAGS,
    version: { kind: 'int', help: 'KV version (1 or 2); the same as -options=version=N' },
    options: OPTIONS,
  },
  async run({ flags, args }, io) {
    const type = onePath(args, 'the engine type (kv, kv-v2 or transit)');
    const path = withSlash(((flags.path as string) || type).replace(/^\/+/, ''));
    const options = optionsOf(flags);
    if (flags.version !== undefined) options.version = String(flags.version);
    await ApiClient.fromFlags(flags, io.env).request('POST', `sys/mounts/${path}`, {
      type,
      description: flags.description,
      config: ttlsOf(flags),
      options: Object.keys(options).length ? options : undefined,
    });
    io.out(`Success! Enabled the ${type} secrets engine at: ${path}`);
    return 0;
  },
};

export const secretsDisable: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    const path = withSlash(onePath(args, 'the path of the secrets engine to disable'));
    await ApiClient.fromFlags(flags, io.env).request('DELETE', `sys/mounts/${path}`);
    io.out(`Success! Disabled the secrets engine (if it existed) at: ${path}`);
    return 0;
  },
};

export const secretsList: Command = {
  flags: { ...CLIENT_FLAGS, detailed: { kind: 'bool', help: 'also show TTLs, options and UUIDs', default: false } },
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    const format = outputFormat(flags, io.env);
    const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/mounts');
    const mounts = (body?.data as Record<string, Body>) ?? {};
    if (format !== 'table') {
      io.out(formatted(format, mounts));
      return 0;
    }
    const paths = Object.keys(mounts).sort();
    if (flags.detailed) {
      io.out(
        columns(
          ['Path', 'Type', 'Accessor', 'Default TTL', 'Max TTL', 'Options', 'Description', 'UUID'],
          paths.map((p) => {
            const m = mounts[p]!;
            const config = (m.config as Body | undefined) ?? {};
            return [p, m.type, m.accessor, ttlCell(config.default_lease_ttl), ttlCell(config.max_lease_ttl), m.options, m.description || 'n/a', m.uuid];
          }),
        ),
      );
    } else {
      io.out(columns(['Path', 'Type', 'Accessor', 'Description'], paths.map((p) => [p, mounts[p]!.type, mounts[p]!.accessor, mounts[p]!.description || 'n/a'])));
    }
    return 0;
  },
};

export const secretsTune: Command = {
  flags: {
    ...CLIENT_FLAGS,
    description: { kind: 'string', help: 'new description' },
    ...TTL_FLAGS,
    options: OPTIONS,
  },
  async run({ flags, args }, io) {
    const path = withSlash(onePath(args, 'the path of the secrets engine to tune'));
    const options = optionsOf(flags);
    const body: Body = { ...ttlsOf(flags) };
    if (flags.description !== undefined) body.description = flags.description;
    if (Object.keys(options).length) body.options = options;
    if (Object.keys(body).length === 0) throw new UsageError('nothing to tune: give -description, -default-lease-ttl, -max-lease-ttl or -options');
    await ApiClient.fromFlags(flags, io.env).request('POST', `sys/mounts/${path.slice(0, -1)}/tune`, body);
    io.out(`Success! Tuned the secrets engine at: ${path}`);
    return 0;
  },
};

export const secretsMove: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length !== 2) throw new UsageError('give the current path and the new path: keyward secrets move secret/ generic/');
    const [from, to] = args.map((a) => withSlash(a.replace(/^\/+/, ''))) as [string, string];
    const { body } = await ApiClient.fromFlags(flags, io.env).request('POST', 'sys/remount', { from, to });
    const id = String((body?.data as Body | undefined)?.migration_id ?? '');
    io.out(`Success! Finished moving secrets engine ${from} to ${to}, with migration ID ${id}`);
    return 0;
  },
};
