import { ApiClient, CLIENT_FLAGS, outputFormat } from '../client.js';
import type { Command } from '../command.js';
import { splitPair, UsageError } from '../flags.js';
import { formatted, table } from '../output.js';

export const auditCommands: Record<string, Command> = {
  enable: {
    flags: {
      ...CLIENT_FLAGS,
      path: { kind: 'string', help: 'where to enable it (default: the type)', default: '' },
      description: { kind: 'string', help: 'human-readable description', default: '' },
    },
    async run({ flags, args }, io) {
      const [type, ...pairs] = args;
      if (!type) throw new UsageError('give the device type (file) and its options as key=value');
      const options: Record<string, string> = {};
      for (const p of pairs) {
        const [key, value] = splitPair(p);
        options[key] = value;
      }
      const path = (flags.path as string) || type;
      await ApiClient.fromFlags(flags, io.env).request('PUT', `sys/audit/${path}`, { type, options, description: flags.description });
      io.out(`Success! Enabled the ${type} audit device at: ${path}/`);
      return 0;
    },
  },
  disable: {
    flags: CLIENT_FLAGS,
    async run({ flags, args }, io) {
      if (args.length !== 1) throw new UsageError('give the path of the device to disable');
      await ApiClient.fromFlags(flags, io.env).request('DELETE', `sys/audit/${args[0]!.replace(/\/$/, '')}`);
      io.out(`Success! Disabled audit device (if it was enabled) at: ${args[0]}`);
      return 0;
    },
  },
  list: {
    flags: CLIENT_FLAGS,
    async run({ flags }, io) {
      const { body } = await ApiClient.fromFlags(flags, io.env).request('GET', 'sys/audit');
      const data = (body?.data as Record<string, { type: string; description: string; options: Record<string, string> }>) ?? {};
      const format = outputFormat(flags, io.env);
      if (format !== 'table') io.out(formatted(format, data));
      else if (Object.keys(data).length === 0) io.out('No audit devices are enabled.');
      else io.out(table(Object.entries(data).map(([p, d]) => [p, `${d.type} ${d.options.file_path ?? ''}`] as const), ['Path', 'Type / File']));
      return 0;
    },
  },
};
