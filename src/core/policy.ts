import { parse as parseHcl } from '@cdktf/hcl2json';
import { InvalidRequestError } from './errors.js';

export const CAPABILITIES = ['create', 'read', 'update', 'patch', 'delete', 'list', 'sudo', 'deny'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** One `path "..." { capabilities = [...] }` block. */
export interface PathRule {
  pattern: string;
  capabilities: Set<Capability>;
}

interface CompiledRule extends PathRule {
  regex: RegExp;
}

export interface Policy {
  name: string;
  /** The document as written (HCL or JSON), returned by reads. */
  raw: string;
  rules: PathRule[];
}

/** Parses an ACL policy document in HCL or JSON, Vault's syntax. */
export async function parsePolicy(name: string, raw: string): Promise<Policy> {
  let doc: unknown;
  const text = raw.trim();
  if (text.startsWith('{')) {
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new InvalidRequestError(`failed to parse policy: invalid JSON: ${(err as Error).message}`);
    }
  } else {
    try {
      doc = await parseHcl(`${name}.hcl`, text);
    } catch (err) {
      throw new InvalidRequestError(`failed to parse policy: ${String((err as Error).message ?? err).replace(/^parse config: /, '')}`);
    }
  }
  const paths = (doc as { path?: unknown }).path;
  if (paths === undefined) return { name, raw, rules: [] };
  if (typeof paths !== 'object' || paths === null || Array.isArray(paths)) throw new InvalidRequestError('failed to parse policy: "path" must be a block');
  const rules: PathRule[] = [];
  for (const [pattern, blockOrList] of Object.entries(paths as Record<string, unknown>)) {
    const blocks = Array.isArray(blockOrList) ? blockOrList : [blockOrList];
    const capabilities = new Set<Capability>();
    for (const block of blocks) {
      const b = block as { capabilities?: unknown; policy?: unknown };
      const caps = b.capabilities ?? legacyPolicy(b.policy, pattern);
      if (!Array.isArray(caps)) throw new InvalidRequestError(`path "${pattern}": capabilities must be a list`);
      for (const c of caps) {
        if (!(CAPABILITIES as readonly string[]).includes(c as string)) {
          throw new InvalidRequestError(`path "${pattern}": invalid capability "${String(c)}" (valid: ${CAPABILITIES.join(', ')})`);
        }
        capabilities.add(c as Capability);
      }
    }
    if (pattern.includes('*') && pattern.indexOf('*') !== pattern.length - 1) {
      throw new InvalidRequestError(`path "${pattern}": "*" is only allowed at the end of a path`);
    }
    rules.push({ pattern, capabilities });
  }
  return { name, raw, rules };
}

/** Vault's pre-0.9 `policy = "read"` shorthand. */
function legacyPolicy(policy: unknown, pattern: string): Capability[] | undefined {
  if (policy === undefined) return undefined;
  const map: Record<string, Capability[]> = {
    deny: ['deny'],
    read: ['read', 'list'],
    write: ['create', 'read', 'update', 'delete', 'list'],
    sudo: ['create', 'read', 'update', 'delete', 'list', 'sudo'],
  };
  const caps = map[String(policy)];
  if (!caps) throw new InvalidRequestError(`path "${pattern}": invalid policy "${String(policy)}"`);
  return caps;
}

/** `+` stands for exactly one path segment; a trailing `*` for any string (a prefix match). */
function compilePattern(pattern: string): RegExp {
  const glob = pattern.endsWith('*');
  const body = (glob ? pattern.slice(0, -1) : pattern)
    .split('/')
    .map((seg) => (seg === '+' ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  // dotAll: a glob's `*` matches every character, line terminators included, as `+` already does.
  return new RegExp(`^${body}${glob ? '.*' : ''}$`, 's');
}

/**
 * Vault's priority between two patterns that both match: the one whose first wildcard comes
 * later wins; then a pattern not ending in `*`; then fewer `+` segments; then the longer one;
 * then the lexicographically greater one.
 */
function morePrecise(a: string, b: string): boolean {
  const firstWild = (p: string) => {
    const i = p.search(/[+*]/);
    return i === -1 ? Infinity : i;
  };
  if (firstWild(a) !== firstWild(b)) return firstWild(a) > firstWild(b);
  if (a.endsWith('*') !== b.endsWith('*')) return !a.endsWith('*');
  const plus = (p: string) => p.split('/').filter((s) => s === '+').length;
  if (plus(a) !== plus(b)) return plus(a) < plus(b);
  if (a.length !== b.length) return a.length > b.length;
  return a > b;
}

/** The union of policies a token holds, answering which capabilities it has on a path. */
export class Acl {
  private readonly rules: CompiledRule[];
  readonly root: boolean;

  constructor(policies: readonly Policy[], root = false) {
    this.root = root;
    // The same pattern in several policies: capabilities add up (deny stays deny).
    const merged = new Map<string, Set<Capability>>();
    for (const p of policies) {
      for (const r of p.rules) {
        const set = merged.get(r.pattern) ?? new Set<Capability>();
        for (const c of r.capabilities) set.add(c);
        merged.set(r.pattern, set);
      }
    }
    this.rules = [...merged].map(([pattern, capabilities]) => ({ pattern, capabilities, regex: compilePattern(pattern) }));
  }

  /** The capabilities on `path`, as sys/capabilities-self reports them (["root"] for a root token). */
  capabilities(path: string): string[] {
    if (this.root) return ['root'];
    let best: CompiledRule | undefined;
    for (const r of this.rules) {
      if (r.regex.test(path) && (!best || morePrecise(r.pattern, best.pattern))) best = r;
    }
    if (!best || best.capabilities.has('deny')) return ['deny'];
    return CAPABILITIES.filter((c) => best!.capabilities.has(c));
  }

  allows(path: string, capability: Capability, sudo = false): boolean {
    if (this.root) return true;
    const caps = this.capabilities(path);
    return caps.includes(capability) && (!sudo || caps.includes('sudo'));
  }

  /** Whether some rule grants something other than deny on a path below `prefix` (a mount path, ending in "/"), as Vault asks before describing a mount. */
  grantsBelow(prefix: string): boolean {
    return this.root || this.rules.some((r) => [...r.capabilities].some((c) => c !== 'deny') && reachesBelow(r.pattern, prefix));
  }
}

/** Whether `pattern` can match a path below `prefix` ("team/kv/"): segment by segment, `+` taking any one, a glob any rest. */
function reachesBelow(pattern: string, prefix: string): boolean {
  const glob = pattern.endsWith('*');
  const pat = (glob ? pattern.slice(0, -1) : pattern).split('/');
  const pre = prefix.slice(0, -1).split('/');
  for (let i = 0; i < pre.length; i++) {
    const p = pat[i];
    if (p === undefined) return false;
    if (glob && i === pat.length - 1) return pre[i]!.startsWith(p);
    if (p !== '+' && p !== pre[i]) return false;
  }
  return glob || pat.length > pre.length;
}
