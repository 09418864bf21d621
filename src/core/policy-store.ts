import type { SecurityBarrier } from '../barrier/barrier.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from './errors.js';
import { isPolicyName, policyName } from './names.js';
import { Acl, type Capability, parsePolicy, type Policy } from './policy.js';

const POLICY_PREFIX = 'sys/policy/';

/** Vault's built-in default policy, trimmed to the endpoints keyward has: a token may manage itself. */
export const DEFAULT_POLICY = `# Allow tokens to look up, renew and revoke themselves, and to ask what they may do.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}

path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Allow a token to manage its own cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap values, look up wrapping tokens and unwrap them.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
`;

/** The built-in policy of response-wrapping tokens (Vault's): it lets them be unwrapped, nothing else. It cannot be written or deleted. */
export const RESPONSE_WRAPPING_POLICY = 'response-wrapping';

// Vault also grants cubbyhole/response; keyward leaves it out, since reading it would return the
// reply without using up the token.
const RESPONSE_WRAPPING_RULES = `path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
`;

/** ACL policies kept through the barrier, with the built-in `root` (everything), `default` and `response-wrapping`. */
export class PolicyStore {
  private readonly cache = new Map<string, Policy>();
  /** Compiled ACLs by policy-name list: every non-root request needs one. Any policy change drops them all. */
  private readonly acls = new Map<string, Acl>();
  private changes = 0;

  constructor(private readonly barrier: SecurityBarrier) {}

  async list(): Promise<string[]> {
    const stored = await this.barrier.list(POLICY_PREFIX);
    // Vault does not list response-wrapping: no token may be given it.
    return [...new Set(['default', ...stored, 'root'])].filter((n) => n !== RESPONSE_WRAPPING_POLICY).sort();
  }

  async get(name: string): Promise<Policy> {
    const n = policyName(name);
    if (n === 'root') return { name: 'root', raw: '', rules: [] };
    const cached = this.cache.get(n);
    if (cached) return cached;
    if (n === RESPONSE_WRAPPING_POLICY) {
      const builtIn = await parsePolicy(n, RESPONSE_WRAPPING_RULES);
      this.cache.set(n, builtIn);
      return builtIn;
    }
    const raw = await this.barrier.get(POLICY_PREFIX + n);
    if (!raw && n !== 'default') throw new NotFoundError(`no policy named "${n}"`);
    const policy = await parsePolicy(n, raw ? raw.toString('utf8') : DEFAULT_POLICY);
    this.cache.set(n, policy);
    return policy;
  }

  async put(name: string, raw: string): Promise<void> {
    const n = policyName(name);
    if (n === 'root' || n === RESPONSE_WRAPPING_POLICY) throw new InvalidRequestError(`cannot update the ${n} policy`);
    const policy = await parsePolicy(n, raw);
    this.changed();
    await this.barrier.put(POLICY_PREFIX + n, Buffer.from(raw));
    this.cache.set(n, policy);
    this.changed();
  }

  async delete(name: string): Promise<void> {
    const n = policyName(name);
    if (n === 'root' || n === 'default' || n === RESPONSE_WRAPPING_POLICY) throw new InvalidRequestError(`cannot delete the ${n} policy`);
    this.changed();
    await this.barrier.delete(POLICY_PREFIX + n);
    this.cache.delete(n);
    this.changed();
  }

  /**
   * The ACL for a set of policy names; unknown names grant nothing (as in Vault), and so do names
   * that are not canonical (a token made before names were checked may hold one): "Admin" is not
   * a spelling of "admin".
   */
  async aclFor(names: readonly string[]): Promise<Acl> {
    if (names.includes('root')) return new Acl([], true);
    const key = names.join('\u0000');
    const cached = this.acls.get(key);
    if (cached) return cached;
    const before = this.changes;
    const policies: Policy[] = [];
    for (const name of names.filter(isPolicyName)) {
      try {
        policies.push(await this.get(name));
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    const acl = new Acl(policies);
    // An ACL built while a policy changed may be stale: use it for this request, do not keep it.
    if (this.changes === before && this.acls.size < 1000) this.acls.set(key, acl);
    return acl;
  }

  /**
   * Throws PermissionDeniedError unless `policies` grant `capability` (with sudo if asked) on every
   * one of `paths`: the spellings a request may use for one thing, of which the ACL check before
   * the route saw only the one sent. A rule written for another spelling then still applies.
   */
  async requireOnEvery(policies: readonly string[], paths: readonly string[], capability: Capability, sudo: boolean): Promise<void> {
    const acl = await this.aclFor(policies);
    const refused = paths.find((path) => !acl.allows(path, capability, sudo));
    if (refused !== undefined) {
      throw new PermissionDeniedError(`the token's policies (${policies.join(', ')}) do not grant ${sudo ? `${capability} with sudo` : capability} on "${refused}", which names the same thing as this request's path`);
    }
  }

  clear(): void {
    this.cache.clear();
    this.changed();
  }

  private changed(): void {
    this.changes++;
    this.acls.clear();
  }
}
