import { writeFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, tokenFile } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { table } from '../output.js';
import { promptHidden } from '../prompt.js';

/** `keyward login TOKEN`: checks the token and keeps it for later commands in ~/.keyward-token (mode 0600). */
export const loginCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length > 1) throw new UsageError('give at most one token');
    const token = args[0] ?? (await promptHidden('Token (will be hidden): '));
    if (!token) throw new UsageError('no token given');
    const client = ApiClient.fromFlags(flags, { ...io.env, KEYWARD_TOKEN: token, VAULT_TOKEN: '' });
    const { body } = await client.request('GET', 'auth/token/lookup-self');
    const d = (body?.data as Record<string, unknown>) ?? {};
    await writeFile(tokenFile(io.env), `${token}\n`, { mode: 0o600 });
    io.out(
      `Success! You are now authenticated. The token is stored in ${tokenFile(io.env)} and\nused by later commands unless KEYWARD_TOKEN (or VAULT_TOKEN) is set.\n\n${table([
        ['token_accessor', d.accessor],
        ['token_duration', d.ttl === 0 ? '∞' : `${String(d.ttl)}s`],
        ['token_policies', d.policies],
      ])}`,
    );
    return 0;
  },
};
