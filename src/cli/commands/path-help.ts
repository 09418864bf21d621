import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { formatted } from '../output.js';

/** `keyward path-help PATH`: the server's help for an API path (GET PATH?help=1, as Vault's CLI asks it). */
export const pathHelpCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length !== 1) throw new UsageError(`give exactly one path, such as secret/ or sys/mounts (got ${args.length} arguments)`);
    const format = outputFormat(flags, io.env);
    const path = args[0]!.replace(/^\/+/, '');
    let body;
    try {
      ({ body } = await ApiClient.fromFlags(flags, io.env).request('GET', path, undefined, { query: { help: '1' } }));
    } catch (err) {
      if ((err as Error).name === 'ApiError') (err as Error).message = `Error retrieving help: ${(err as Error).message}`;
      throw err;
    }
    io.out(format === 'table' ? String(body?.help ?? '') : formatted(format, body));
    return 0;
  },
};
