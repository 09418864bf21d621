// `keyward unwrap [TOKEN]`: the response a wrapping token holds, printed as `read` prints a secret.
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { column, formatted, show } from '../output.js';
import { printSecret } from '../secret.js';

type Body = Record<string, unknown>;

export const unwrapCommand: Command = {
  flags: { ...CLIENT_FLAGS, field: { kind: 'string', help: 'print only this field of the unwrapped data, piped without a newline', default: '' } },
  async run({ flags, args }, io) {
    if (args.length > 1) throw new UsageError(`give at most one wrapping token (expected 0-1 arguments, got ${args.length})`);
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    const wrapping = args[0]?.trim();
    // As Vault's client: with no token of its own the wrapping token authenticates the request;
    // otherwise it goes in the body. With no argument, the CLI's own token is the wrapping token.
    let response;
    try {
      response = wrapping && client.token && client.token !== wrapping
        ? await client.withToken(client.token, false).request('PUT', 'sys/wrapping/unwrap', { token: wrapping })
        : await client.withToken(wrapping || client.token, false).request('PUT', 'sys/wrapping/unwrap');
    } catch (err) {
      if ((err as Error).name === 'ApiError') (err as Error).message = `Error unwrapping: ${(err as Error).message}`;
      throw err;
    }
    const body = response.body;
    if (!body) {
      io.err('Could not find wrapped response');
      return 2;
    }
    const data = body.data as Body | null | undefined;
    // A wrapped list answers with its keys, printed as `list` prints them.
    if (!flags.field && data && Object.keys(data).length === 1 && Array.isArray(data.keys)) {
      io.out(format === 'table' ? column('Keys', data.keys.map(show)) : formatted(format, data.keys));
      return 0;
    }
    return printSecret(io, format, flags.field as string, body);
  },
};
