/** A mistake in how the command was called: printed with the command's help, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type FlagKind = 'string' | 'bool' | 'int' | 'list';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: string | boolean | number;
}

export type FlagValues = Record<string, string | boolean | number | string[] | undefined>;

export interface Parsed {
  flags: FlagValues;
  args: string[];
}

/**
 * Vault's flag style: `-name=value`, `-name value`, `--name=value`, and bare `-name` for
 * booleans. Flags may come before or after positional arguments; `--` ends flags.
 */
export function parseFlags(argv: readonly string[], specs: Record<string, FlagSpec>): Parsed {
  const flags: FlagValues = {};
  for (const [name, spec] of Object.entries(specs)) flags[name] = spec.kind === 'list' ? [] : spec.default;
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!/^--?[A-Za-z]/.test(arg)) {
      args.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown flag -${name}`);
    let text: string | undefined = eq === -1 ? undefined : body.slice(eq + 1);
    if (spec.kind === 'bool') {
      if (text === undefined) flags[name] = true;
      else if (/^(true|1|t)$/i.test(text)) flags[name] = true;
      else if (/^(false|0|f)$/i.test(text)) flags[name] = false;
      else throw new UsageError(`flag -${name} takes true or false, not "${text}"`);
      continue;
    }
    if (text === undefined) {
      text = argv[++i];
      if (text === undefined) throw new UsageError(`flag -${name} needs a value`);
    }
    if (spec.kind === 'list') {
      // Repeatable (-policy=a -policy=b); a comma-separated value adds several.
      (flags[name] as string[]).push(...text.split(',').map((v) => v.trim()).filter(Boolean));
    } else if (spec.kind === 'int') {
      if (!/^-?\d+$/.test(text)) throw new UsageError(`flag -${name} takes a whole number, not "${text}"`);
      flags[name] = Number(text);
    } else flags[name] = text;
  }
  return { flags, args };
}

/** Splits a `key=value` argument (value may be empty or contain "="); a usage error otherwise. */
export function splitPair(arg: string, what = ''): [string, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new UsageError(`${what}"${arg}" is not key=value`);
  return [arg.slice(0, eq), arg.slice(eq + 1)];
}

export function flagHelp(specs: Record<string, FlagSpec>): string {
  return Object.entries(specs)
    .map(([name, s]) => `  -${name}${s.kind === 'bool' ? '' : `=<${s.kind}>`}\n      ${s.help}${s.default !== undefined && s.default !== '' ? ` (default: ${String(s.default)})` : ''}`)
    .join('\n');
}
