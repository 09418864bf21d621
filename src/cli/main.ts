// The keyward command. Each verb's module is imported only when that verb runs, so a client verb
// loads the HTTP client and its own code, never the server (fastify, PKCS#11, PGP, the HCL parser):
// keep the static imports here to these few light modules.
import type { Command, Io } from './command.js';
import { flagHelp, type Parsed, parseFlags, UsageError } from './flags.js';

interface Verb {
  name: string;
  synopsis: string;
  load(): Promise<Command>;
}

const kv = (verb: string) => async () => (await import('./commands/kv.js')).kvCommands[verb]!;
const secrets = async () => import('./commands/secrets.js');
const generic = async () => import('./commands/generic.js');
const token = (verb: string) => async () => (await import('./commands/token.js')).tokenCommands[verb]!;
const policy = (verb: string) => async () => (await import('./commands/policy.js')).policyCommands[verb]!;
const audit = (verb: string) => async () => (await import('./commands/audit.js')).auditCommands[verb]!;
const auth = async () => import('./commands/auth.js');

const VERBS: Verb[] = [
  { name: 'server', synopsis: 'Run the keyward server (-config=FILE, or -dev for a throwaway development server)', load: async () => (await import('./commands/server.js')).serverCommand },
  { name: 'status', synopsis: 'Print the seal status of the server', load: async () => (await import('./commands/status.js')).statusCommand },
  { name: 'operator init', synopsis: 'Initialize the server: create the root key, split it into shares, print them and the root token', load: async () => (await import('./commands/operator-init.js')).operatorInitCommand },
  { name: 'operator unseal', synopsis: 'Give one unseal key share (prompted without echo when not given)', load: async () => (await import('./commands/operator-unseal.js')).operatorUnsealCommand },
  { name: 'operator seal', synopsis: 'Seal the server: drop every key from the token session until a quorum unseals it again', load: async () => (await import('./commands/operator-seal.js')).operatorSealCommand },
  { name: 'operator step-down', synopsis: 'Make the active node give up the leader lease so a standby takes over', load: async () => (await import('./commands/operator-step-down.js')).operatorStepDownCommand },
  { name: 'operator rekey', synopsis: 'Rekey: new root key and new shares, authorized by a quorum of the current shares', load: async () => (await import('./commands/operator-rekey.js')).operatorRekeyCommand },
  { name: 'operator rotate', synopsis: 'Install a new encryption-key term (-rewrap re-encrypts old values to it; -prune retires unused terms)', load: async () => (await import('./commands/operator-rotate.js')).operatorRotateCommand },
  { name: 'operator key-status', synopsis: 'Print the active encryption-key term, its install time and encryption count', load: async () => (await import('./commands/operator-rotate.js')).operatorKeyStatusCommand },
  { name: 'operator generate-root', synopsis: 'Mint a new root token with a quorum of shares (OTP- or PGP-protected)', load: async () => (await import('./commands/operator-generate-root.js')).operatorGenerateRootCommand },
  { name: 'read', synopsis: 'Read any API path: keyward read [-field=NAME] PATH [key=value ...] (the pairs go in the query)', load: async () => (await generic()).readCommand },
  { name: 'write', synopsis: 'Write to any API path: keyward write PATH key=value | key=@file | key=- | - | @data.json', load: async () => (await generic()).writeCommand },
  { name: 'list', synopsis: 'List the keys under any API path (exit 2 when none)', load: async () => (await generic()).listCommand },
  { name: 'delete', synopsis: 'Delete at any API path', load: async () => (await generic()).deleteCommand },
  { name: 'secrets enable', synopsis: 'Enable a secrets engine: keyward secrets enable [-path=P] [-version=2] kv | kv-v2 | transit', load: async () => (await secrets()).secretsEnable },
  { name: 'secrets disable', synopsis: 'Disable the secrets engine at a path, deleting its data', load: async () => (await secrets()).secretsDisable },
  { name: 'secrets list', synopsis: 'List the enabled secrets engines (-detailed adds TTLs, options and UUIDs)', load: async () => (await secrets()).secretsList },
  { name: 'secrets tune', synopsis: 'Tune a secrets engine: -description, -default-lease-ttl, -max-lease-ttl, -options=version=2', load: async () => (await secrets()).secretsTune },
  { name: 'secrets move', synopsis: 'Move a secrets engine to another path, keeping its data: keyward secrets move FROM TO', load: async () => (await secrets()).secretsMove },
  { name: 'kv put', synopsis: 'Write a secret: key=value pairs, key=@file, key=-, "-" or @data.json (-cas on KV v2)', load: kv('put') },
  { name: 'kv patch', synopsis: 'Change some keys of a KV v2 secret, keeping the others (-method=patch|rw, -cas, -remove)', load: kv('patch') },
  { name: 'kv get', synopsis: 'Read a secret (-version on KV v2, -field for one key; exit 2 when none)', load: kv('get') },
  { name: 'kv delete', synopsis: 'Delete a secret (KV v2: its latest version, or -versions=1,2; undelete can restore them)', load: kv('delete') },
  { name: 'kv undelete', synopsis: 'Restore deleted versions of a KV v2 secret: -versions=1,2', load: kv('undelete') },
  { name: 'kv destroy', synopsis: 'Remove versions of a KV v2 secret for good: -versions=1,2', load: kv('destroy') },
  { name: 'kv list', synopsis: 'List the keys under a path (exit 2 when none)', load: kv('list') },
  { name: 'kv rollback', synopsis: 'Make an older version of a KV v2 secret the current one again: -version=N', load: kv('rollback') },
  { name: 'kv enable-versioning', synopsis: 'Upgrade a KV version 1 mount to version 2 in place, keeping every secret', load: kv('enable-versioning') },
  { name: 'kv metadata get', synopsis: 'Show a KV v2 secret\'s metadata and versions', load: kv('metadata get') },
  { name: 'kv metadata put', synopsis: 'Set a KV v2 secret\'s -max-versions, -cas-required, -delete-version-after, -custom-metadata', load: kv('metadata put') },
  { name: 'kv metadata delete', synopsis: 'Delete a KV v2 secret with every version and its metadata', load: kv('metadata delete') },
  { name: 'auth enable', synopsis: 'Enable an auth method: keyward auth enable [-path=P] approle | userpass | cert | jwt', load: async () => (await auth()).authEnable },
  { name: 'auth disable', synopsis: 'Disable the auth method at a path, revoking the tokens it issued', load: async () => (await auth()).authDisable },
  { name: 'auth list', synopsis: 'List the enabled auth methods (-detailed adds TTLs, token type, options and UUIDs)', load: async () => (await auth()).authList },
  { name: 'auth tune', synopsis: 'Tune an auth method: -description, -default-lease-ttl, -max-lease-ttl', load: async () => (await auth()).authTune },
  { name: 'token create', synopsis: 'Create a token (a child of the current one unless -orphan; -role, -period, -field)', load: token('create') },
  { name: 'token capabilities', synopsis: 'Print what a token (the current one when none is given) may do on a path: keyward token capabilities [TOKEN] PATH', load: token('capabilities') },
  { name: 'token lookup', synopsis: 'Show a token (the current one when none is given; -accessor looks one up by accessor)', load: token('lookup') },
  { name: 'token renew', synopsis: 'Renew a token (the current one when none is given)', load: token('renew') },
  { name: 'token revoke', synopsis: 'Revoke a token and its children (-mode=orphan keeps the children; -self; -accessor)', load: token('revoke') },
  { name: 'policy write', synopsis: 'Write an ACL policy from a file (or "-" for standard input): keyward policy write NAME FILE', load: policy('write') },
  { name: 'policy read', synopsis: 'Print an ACL policy', load: policy('read') },
  { name: 'policy list', synopsis: 'List ACL policies', load: policy('list') },
  { name: 'policy delete', synopsis: 'Delete an ACL policy', load: policy('delete') },
  { name: 'audit enable', synopsis: 'Enable an audit device: keyward audit enable file file_path=/var/log/keyward/audit.log [-path=NAME]', load: audit('enable') },
  { name: 'audit disable', synopsis: 'Disable the audit device at a path', load: audit('disable') },
  { name: 'audit list', synopsis: 'List the enabled audit devices', load: audit('list') },
  { name: 'login', synopsis: 'Authenticate and keep the token for later commands: a token (prompted when not given), or -method=userpass|approle|cert|jwt k=v ...', load: async () => (await import('./commands/login.js')).loginCommand },
  { name: 'unwrap', synopsis: 'Print the response a wrapping token holds, once: keyward unwrap [TOKEN] (the current token when none is given)', load: async () => (await import('./commands/unwrap.js')).unwrapCommand },
  { name: 'print token', synopsis: 'Print the token the CLI would send (KEYWARD_TOKEN, VAULT_TOKEN or the one login stored)', load: async () => (await import('./commands/print-token.js')).printTokenCommand },
  { name: 'path-help', synopsis: 'Print the server\'s help for an API path and the paths below it', load: async () => (await import('./commands/path-help.js')).pathHelpCommand },
];

function usage(verbs: readonly Verb[] = VERBS): string {
  const width = Math.max(...verbs.map((c) => c.name.length));
  return [
    'Usage: keyward <command> [flags] [args]',
    '',
    ...verbs.map((c) => `    ${c.name.padEnd(width)}    ${c.synopsis}`),
    '',
    'Run "keyward <command> -help" for a command\'s flags.',
  ].join('\n');
}

/** Finds the longest command name that prefixes argv (e.g. "kv metadata get", "operator unseal"). */
function findVerb(argv: string[]): { verb: Verb; rest: string[] } | undefined {
  for (const words of [3, 2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const verb = VERBS.find((c) => c.name === name);
    if (verb) return { verb, rest: argv.slice(words) };
  }
  return undefined;
}

/**
 * Errors by name rather than class: importing the classes would load their modules (the config
 * loader's error comes with the server's modules) for every command.
 */
function exitCodeOf(err: Error): number {
  return err instanceof UsageError || err.name === 'ConfigError' ? 2 : 1;
}

export async function main(argv: string[], io: Io): Promise<number> {
  if (argv.length === 0 || ['-h', '-help', '--help', 'help'].includes(argv[0]!)) {
    io.out(usage());
    return argv.length === 0 ? 2 : 0;
  }
  if (['version', '-version', '--version'].includes(argv[0]!)) {
    const { VERSION } = await import('../version.js');
    io.out(`keyward v${VERSION}`);
    return 0;
  }
  const found = findVerb(argv);
  if (!found) {
    // Within a group ("keyward kv", "keyward secrets frob"): that group's verbs, as Vault lists them.
    const group = VERBS.filter((c) => c.name.startsWith(`${argv[0]} `));
    io.err(group.length && argv.length === 1 ? usage(group) : `Unknown command "${argv.slice(0, 2).join(' ')}".\n\n${usage(group.length ? group : VERBS)}`);
    return 2;
  }
  const { verb, rest } = found;
  const command = await verb.load();
  if (rest.some((a) => ['-h', '-help', '--help'].includes(a))) {
    io.out(`Usage: keyward ${verb.name} [flags] [args]\n\n  ${verb.synopsis}\n\nFlags:\n${flagHelp(command.flags)}`);
    return 0;
  }
  let parsed: Parsed | undefined;
  try {
    parsed = parseFlags(rest, command.flags);
    return await command.run(parsed, io);
  } catch (err) {
    const e = err as Error;
    // -output-curl-string: the request the command would have sent, in place of its answer.
    if (e.name === 'CurlOutput') {
      io.out(e.message);
      return 0;
    }
    // -wrap-ttl: the server kept the answer behind a wrapping token; its details are the output.
    if (e.name === 'WrappedResponse' && parsed) {
      const [{ printSecret }, { outputFormat }] = await Promise.all([import('./secret.js'), import('./client.js')]);
      const body = (e as Error & { body: Record<string, unknown> }).body;
      return printSecret(io, outputFormat(parsed.flags, io.env), parsed.flags.field as string | undefined, body);
    }
    const code = exitCodeOf(e);
    if (err instanceof UsageError) io.err(`${e.message}\n\nRun "keyward ${verb.name} -help" for usage.`);
    else if (e.name === 'ApiError') io.err(e.message);
    else io.err(`Error: ${e.message}`);
    return code;
  }
}

const io: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  // Vault's raw output: a newline only on a terminal, so `$(keyward read -field=x ...)` gets the value alone.
  raw: (text) => process.stdout.write(process.stdout.isTTY ? `${text}\n` : text),
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
