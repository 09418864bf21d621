import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { formatted, table } from '../output.js';
import { promptHidden } from '../prompt.js';
import { sealStatusRows } from './status.js';

export const operatorUnsealCommand: Command = {
  flags: { ...CLIENT_FLAGS, reset: { kind: 'bool', help: 'discard the shares given so far', default: false } },
  async run({ flags, args }, io) {
    if (args.length > 1) throw new UsageError('give at most one key share');
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    let body: Record<string, unknown>;
    if (flags.reset) body = { reset: true };
    else {
      const key = args[0] ?? (await promptHidden('Unseal Key (will be hidden): ', flags));
      if (!key) throw new UsageError('no key share given');
      body = { key };
    }
    const res = await client.request('PUT', 'sys/unseal', body);
    const s = res.body ?? {};
    io.out(format !== 'table' ? formatted(format, s) : table(sealStatusRows(s)));
    return 0;
  },
};
