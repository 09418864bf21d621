import { ApiClient, CLIENT_FLAGS } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';

/** `keyward print token`: the token the CLI would send (KEYWARD_TOKEN, VAULT_TOKEN, or the one `login` stored). */
export const printTokenCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length) throw new UsageError(`unexpected argument "${args[0]}"`);
    io.out(ApiClient.fromFlags(flags, io.env).token ?? '');
    return 0;
  },
};
