import { ConfigError } from '../config/config.js';
import { VERSION } from '../version.js';
import { ApiError } from './client.js';
import type { Command, Io } from './command.js';
import { auditCommands } from './commands/audit.js';
import { kvCommands } from './commands/kv.js';
import { loginCommand } from './commands/login.js';
import { policyCommands } from './commands/policy.js';
import { tokenCommands } from './commands/token.js';
import { operatorGenerateRootCommand } from './commands/operator-generate-root.js';
import { operatorInitCommand } from './commands/operator-init.js';
import { operatorRekeyCommand } from './commands/operator-rekey.js';
import { operatorKeyStatusCommand, operatorRotateCommand } from './commands/operator-rotate.js';
import { operatorSealCommand } from './commands/operator-seal.js';
import { operatorStepDownCommand } from './commands/operator-step-down.js';
import { operatorUnsealCommand } from './commands/operator-unseal.js';
import { serverCommand } from './commands/server.js';
import { statusCommand } from './commands/status.js';
import { flagHelp, parseFlags, UsageError } from './flags.js';

const COMMANDS: Command[] = [serverCommand, statusCommand, operatorInitCommand, operatorUnsealCommand, operatorSealCommand, operatorStepDownCommand, operatorRekeyCommand, operatorRotateCommand, operatorKeyStatusCommand, operatorGenerateRootCommand, ...kvCommands, ...tokenCommands, ...policyCommands, ...auditCommands, loginCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: keyward <command> [flags] [args]',
    '',
    ...COMMANDS.map((c) => `    ${c.name.padEnd(width)}    ${c.synopsis}`),
    '',
    'Run "keyward <command> -help" for a command\'s flags.',
  ].join('\n');
}

/** Finds the longest command name that prefixes argv (e.g. "operator unseal"). */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

export async function main(argv: string[], io: Io): Promise<number> {
  if (argv.length === 0 || ['-h', '-help', '--help', 'help'].includes(argv[0]!)) {
    io.out(usage());
    return argv.length === 0 ? 2 : 0;
  }
  if (['version', '-version', '--version'].includes(argv[0]!)) {
    io.out(`keyward v${VERSION}`);
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    io.err(`Unknown command "${argv.slice(0, 2).join(' ')}".\n\n${usage()}`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.some((a) => ['-h', '-help', '--help'].includes(a))) {
    io.out(`Usage: keyward ${command.name} [flags] [args]\n\n  ${command.synopsis}\n\nFlags:\n${flagHelp(command.flags)}`);
    return 0;
  }
  try {
    return await command.run(parseFlags(rest, command.flags), io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\nRun "keyward ${command.name} -help" for usage.`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`Error: ${err.message}`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.err(err.message);
      return 1;
    }
    io.err(`Error: ${(err as Error).message}`);
    return 1;
  }
}

const io: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
};

main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
