import { KeyedMutex } from '../locks/mutex.js';
import type { CubbyholeStore } from './cubbyhole.js';
import { InvalidRequestError } from './errors.js';
import { RESPONSE_WRAPPING_POLICY } from './policy-store.js';
import type { TokenEntry, TokenStore } from './token-store.js';

/** Vault's `wrap_info`: what a wrapped reply carries instead of its body. */
export interface WrapInfo {
  token: string;
  accessor: string;
  ttl: number;
  /** RFC 3339. */
  creation_time: string;
  /** The request path whose reply was wrapped (below /v1/). */
  creation_path: string;
  /** The accessor of the token in a wrapped auth reply; Vault leaves the field out otherwise. */
  wrapped_accessor?: string;
}

/** What sys/wrapping/lookup tells about a wrapping token, without using it. */
export interface WrapLookup {
  creation_ttl: number;
  creation_time: string;
  creation_path: string;
}

/** What the wrapping token's cubbyhole keeps besides the reply (Vault's `cubbyhole/wrapinfo`). */
interface StoredWrapInfo extends WrapLookup {
  wrapped_accessor: string;
}

// Vault's entry names in the wrapping token's cubbyhole.
const RESPONSE_PATH = 'response';
const WRAPINFO_PATH = 'wrapinfo';

/** Vault's answer for any token that cannot be unwrapped: unknown, expired, used, or not a wrapping token. */
const NOT_VALID = 'wrapping token is not valid or does not exist';

/**
 * Response wrapping as Vault does it: a reply is stored in the cubbyhole of a new single-use token
 * (policy `response-wrapping` only, an orphan, not renewable, living the wrap TTL) and the caller
 * gets that token. Unwrapping returns the reply as it would have been sent and revokes the token,
 * which deletes its cubbyhole; uses of one token are serialized so only one unwrap succeeds.
 */
export class ResponseWrapper {
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly tokens: TokenStore,
    private readonly cubbyholes: CubbyholeStore,
  ) {}

  /** Stores `response` (the reply body, JSON text) behind a new wrapping token living `ttl` seconds (at most the system maximum). */
  async wrap(response: string, ttl: number, creationPath: string, wrappedAccessor = ''): Promise<WrapInfo> {
    const { token, entry } = await this.tokens.createWrapping(ttl, creationPath);
    const info: StoredWrapInfo = {
      creation_ttl: entry.ttl,
      creation_time: new Date(entry.creation_time * 1000).toISOString(),
      creation_path: creationPath,
      wrapped_accessor: wrappedAccessor,
    };
    try {
      await this.cubbyholes.write(entry, RESPONSE_PATH, { response });
      await this.cubbyholes.write(entry, WRAPINFO_PATH, { ...info });
    } catch (err) {
      await this.tokens.revoke(entry, false);
      throw err;
    }
    const wrapInfo: WrapInfo = { token, accessor: entry.accessor, ttl: info.creation_ttl, creation_time: info.creation_time, creation_path: creationPath };
    if (wrappedAccessor) wrapInfo.wrapped_accessor = wrappedAccessor;
    return wrapInfo;
  }

  /** The wrapping token's entry; InvalidRequestError (Vault's 400) for anything that is not a live wrapping token. */
  async check(token: string | undefined): Promise<TokenEntry> {
    const entry = await this.tokens.lookup(token).catch(() => undefined);
    if (!entry || entry.policies.length !== 1 || entry.policies[0] !== RESPONSE_WRAPPING_POLICY) throw new InvalidRequestError(NOT_VALID);
    return entry;
  }

  async lookup(token: string): Promise<WrapLookup> {
    const { creation_ttl, creation_time, creation_path } = await this.storedInfo(await this.check(token));
    return { creation_ttl, creation_time, creation_path };
  }

  /** The wrapped reply (JSON text); the token is revoked before it is returned, so it is given out once. */
  unwrap(token: string): Promise<string> {
    return this.consume(token, async (response) => response);
  }

  /** A new wrapping token for the same reply, with the original TTL and creation path; the old token is revoked. */
  rewrap(token: string): Promise<WrapInfo> {
    return this.consume(token, async (response, info) => this.wrap(response, info.creation_ttl, info.creation_path, info.wrapped_accessor));
  }

  /**
   * Runs `use` on the token's reply under the token's lock, then revokes the token. The token is
   * checked again under the lock: a concurrent use that got there first has revoked it.
   */
  private async consume<T>(token: string, use: (response: string, info: StoredWrapInfo) => Promise<T>): Promise<T> {
    const first = await this.check(token);
    return this.locks.run(first.accessor, async () => {
      const entry = await this.check(token);
      const stored = await this.cubbyholes.read(entry, RESPONSE_PATH);
      if (typeof stored?.response !== 'string') throw new InvalidRequestError(NOT_VALID);
      const result = await use(stored.response, await this.storedInfo(entry));
      await this.tokens.revoke(entry, false);
      return result;
    });
  }

  private async storedInfo(entry: TokenEntry): Promise<StoredWrapInfo> {
    const info = await this.cubbyholes.read(entry, WRAPINFO_PATH);
    if (!info) throw new InvalidRequestError(NOT_VALID);
    return info as unknown as StoredWrapInfo;
  }
}
