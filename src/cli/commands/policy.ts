import { readFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { formatted } from '../output.js';

function oneName(args: string[]): string {
  if (args.length < 1) throw new UsageError('give the policy name');
  return args[0]!;
}

/** A policy name is one segment of its API path: a "/" in it would name another path. */
function policyName(name: string): string {
  if (name.includes('/')) throw new UsageError(`policy name "${name}" cannot contain "/"`);
  return name;
}

export const policyCommands: Record<string, Command> = {
  write: {
    flags: CLIENT_FLAGS,
    async run({ flags, args }, io) {
      if (args.length !== 2) throw new UsageError('usage: keyward policy write NAME FILE');
      let doc: string;
      if (args[1] === '-') {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        doc = Buffer.concat(chunks).toString('utf8');
      } else {
        try {
          doc = await readFile(args[1]!, 'utf8');
        } catch (err) {
          throw new UsageError(`cannot read ${args[1]}: ${(err as Error).message}`);
        }
      }
      await ApiClient.fromFlags(flags, io.env).request('PUT', `sys/policies/acl/${policyName(args[0]!)}`, { policy: doc });
      io.out(`Success! Uploaded policy: ${args[0]}`);
      return 0;
    },
  },
  read: {
    flags: CLIENT_FLAGS,
    async run({ flags, args }, io) {
      const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', `sys/policies/acl/${policyName(oneName(args))}`);
      const data = (body?.data as { policy?: string }) ?? {};
      const format = outputFormat(flags, io.env);
      io.out(format !== 'table' ? formatted(format, body) : (data.policy ?? ''));
      return 0;
    },
  },
  list: {
    flags: CLIENT_FLAGS,
    async run({ flags }, io) {
      const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/policies/acl', undefined, { query: { list: 'true' } });
      const keys = ((body?.data as { keys?: string[] }) ?? {}).keys ?? [];
      const format = outputFormat(flags, io.env);
      io.out(format !== 'table' ? formatted(format, keys) : keys.join('\n'));
      return 0;
    },
  },
  delete: {
    flags: CLIENT_FLAGS,
    async run({ flags, args }, io) {
      await ApiClient.fromFlags(flags, io.env).request('DELETE', `sys/policies/acl/${policyName(oneName(args))}`);
      io.out(`Success! Deleted policy: ${args[0]}`);
      return 0;
    },
  },
};
