// What `secrets` and `auth` share: Vault's mount flags and how their paths and TTLs are shown.
import { type FlagSpec, type FlagValues, splitPair, UsageError } from './flags.js';
import { duration } from './output.js';

type Body = Record<string, unknown>;

export const OPTIONS: FlagSpec = { kind: 'list', help: 'engine option as key=value (repeatable), e.g. -options=version=2 for kv' };

export const TTL_FLAGS: Record<string, FlagSpec> = {
  'default-lease-ttl': { kind: 'string', help: 'default lease TTL, e.g. 1h ("system" for the server\'s)' },
  'max-lease-ttl': { kind: 'string', help: 'maximum lease TTL, e.g. 24h ("system" for the server\'s)' },
};

export function withSlash(path: string): string {
  return path.replace(/\/?$/, '/');
}

export function onePath(args: string[], what: string): string {
  if (args.length !== 1) throw new UsageError(`give exactly one argument: ${what}`);
  return args[0]!.replace(/^\/+/, '');
}

export function optionsOf(flags: FlagValues): Record<string, string> {
  const options: Record<string, string> = {};
  for (const pair of flags.options as string[]) {
    const [k, v] = splitPair(pair, '-options ');
    options[k] = v;
  }
  return options;
}

/** The lease TTLs given as flags, in the request's field names; those not given are left out. */
export function ttlsOf(flags: FlagValues): Body {
  const ttls: Body = {};
  if (flags['default-lease-ttl'] !== undefined) ttls.default_lease_ttl = flags['default-lease-ttl'];
  if (flags['max-lease-ttl'] !== undefined) ttls.max_lease_ttl = flags['max-lease-ttl'];
  return ttls;
}

/** A mount's TTL as `list -detailed` shows it: "system" when it has none of its own. */
export function ttlCell(seconds: unknown): string {
  return Number(seconds) > 0 ? duration(Number(seconds)) : 'system';
}
