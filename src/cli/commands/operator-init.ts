import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { formatted } from '../output.js';

export const operatorInitCommand: Command = {
  flags: {
    ...CLIENT_FLAGS,
    'key-shares': { kind: 'int', help: 'number of shares to split the root key into', default: 5 },
    'key-threshold': { kind: 'int', help: 'number of shares required to rebuild the root key', default: 3 },
    status: { kind: 'bool', help: 'only tell whether the server is initialized: exit 0 if it is, 2 if not, 1 on error', default: false },
  },
  async run({ flags }, io) {
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    if (flags.status) {
      const initialized = (await client.request('GET', 'sys/init')).body?.initialized === true;
      io.out(initialized ? 'keyward is initialized' : 'keyward is not initialized');
      return initialized ? 0 : 2;
    }
    const shares = flags['key-shares'] as number;
    const threshold = flags['key-threshold'] as number;
    const { body } = await client.request('PUT', 'sys/init', { secret_shares: shares, secret_threshold: threshold });
    const keysB64 = (body?.keys_base64 as string[]) ?? [];
    const keysHex = (body?.keys as string[]) ?? [];
    if (format !== 'table') {
      io.out(
        formatted(format, {
          unseal_keys_b64: keysB64,
          unseal_keys_hex: keysHex,
          unseal_shares: shares,
          unseal_threshold: threshold,
          recovery_keys_b64: [],
          recovery_keys_hex: [],
          recovery_keys_shares: 0,
          recovery_keys_threshold: 0,
          root_token: body?.root_token,
        }),
      );
      return 0;
    }
    const lines = keysB64.map((k, i) => `Unseal Key ${i + 1}: ${k}`);
    lines.push('', `Initial Root Token: ${String(body?.root_token)}`, '');
    lines.push(
      `keyward initialized with ${shares} key shares and a key threshold of ${threshold}. Please securely`,
      'distribute the key shares printed above. When the server is re-sealed,',
      `restarted, or stopped, you must supply at least ${threshold} of these keys to unseal it`,
      'before it can start servicing requests.',
    );
    io.out(lines.join('\n'));
    return 0;
  },
};
