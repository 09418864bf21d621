import type { PeerCertificate } from 'node:tls';
import { InvalidRequestError, NotFoundError } from '../core/errors.js';
import type { LogicalRequest, LogicalResponse, Operation } from '../engines/engine.js';
import type { TokenFields } from './token-fields.js';

/** The auth methods this server offers (Vault's type names). */
export type AuthType = 'approle' | 'userpass' | 'cert' | 'jwt';

/** A request to an auth method: a logical request plus who sent it, for CIDR bounds and certificate login. */
export interface AuthRequest extends LogicalRequest {
  connection: {
    remoteAddress: string;
    /** The TLS client certificate the connection presented (with its issuer chain), if any. */
    peerCertificate: PeerCertificate | undefined;
  };
}

/**
 * What a successful login asks the token store for. The token is an orphan at the login path,
 * its TTLs bounded by the mount's tune and the system maximum; `default` is added to the
 * policies unless `noDefaultPolicy`.
 */
export interface LoginAuth {
  policies: string[];
  noDefaultPolicy?: boolean;
  /** Vault's display name, "<method>-<name>" (e.g. "userpass-alice"). */
  displayName: string;
  metadata: Record<string, string>;
  /** Seconds; absent or 0: the mount's default. */
  ttl?: number;
  /** Seconds; absent or 0: the mount's maximum. */
  maxTtl?: number;
  explicitMaxTtl?: number;
  /** Seconds; a periodic token is renewable by this much forever (no max). */
  period?: number;
  /** Uses left; absent or 0: unlimited. */
  numUses?: number;
  /** The token is refused from any other address. */
  boundCidrs?: string[];
  /** Defaults to true. */
  renewable?: boolean;
}

export interface AuthResponse extends LogicalResponse {
  /** On a successful login: the framework issues the token and answers with Vault's `auth` block. */
  auth?: LoginAuth;
  /** Vault's `warnings`: the request went ahead, but the client should know something. */
  warnings?: string[];
}

/** Vault's answer to body fields no endpoint reads: the request goes ahead, with a warning naming them. */
export function warnIgnoredFields<T extends AuthResponse | undefined>(res: T, body: Record<string, unknown>, known: readonly string[]): T | AuthResponse {
  const ignored = Object.keys(body).filter((k) => !known.includes(k));
  if (ignored.length === 0) return res;
  return { ...res, warnings: [`Endpoint ignored these unrecognized parameters: [${ignored.join(' ')}]`] };
}

/** Vault's refusal of a request no endpoint serves: a 400 when `path` is one of the method's own (the operation is wrong), else a 404. */
export function refuseUnserved(operation: Operation, path: string, isOwnPath: boolean): never {
  if (isOwnPath) throw new InvalidRequestError(`unsupported operation: ${operation} on "${path}"`);
  throw new NotFoundError('unsupported path');
}

/** One mounted auth method: its own configuration and roles under its barrier view, and logins. */
export interface AuthMethod {
  /** Whether `path` (below the mount) takes credentials rather than a token, as Vault's unauthenticated paths ("login", "login/alice"). */
  isLoginPath(path: string): boolean;
  handle(req: AuthRequest): Promise<AuthResponse | undefined>;
  /** Whether a write to `path` would update something that exists (ACL "update") or create it ("create"). */
  exists(path: string): Promise<boolean>;
  /**
   * The token fields, as they are now, of the role or user a login came from (named in the
   * token's `metadata`); undefined when it is gone. Renewal checks them as Vault's methods do.
   */
  loginSourceFields(metadata: Record<string, string>): Promise<Readonly<TokenFields> | undefined>;
}

/** What auth methods are built with besides their barrier view. */
export interface AuthMethodDeps {
  /** Injectable for tests (secret-id and JWT expiry). */
  now: () => number;
}
