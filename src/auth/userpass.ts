import { randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from 'node:crypto';
import type { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from '../core/errors.js';
import { jsonBuffer } from '../engines/engine.js';
import { KeyedMutex } from '../locks/mutex.js';
import { cidrContains } from './cidr.js';
import { type AuthMethod, type AuthMethodDeps, type AuthRequest, type AuthResponse, warnIgnoredFields } from './method.js';
import { entryExists, entryName, listEntryNames, readEntry } from './named-entries.js';
import { loginAuthOf, parsePolicies, parseTokenFields, TOKEN_FIELD_NAMES, type TokenFields, tokenFieldsData } from './token-fields.js';

/** Vault's userpass names (framework.GenericNameWithAtRegex): word characters, '-', '.' and '@', starting and ending with a word character. */
const USERNAME = /^\w(?:[\w.@-]*\w)?$/;
const MAX_USERNAME = 512;
const MAX_PASSWORD = 4096;
const INVALID_CREDENTIALS = 'invalid username or password';
const USER_FIELDS = ['password', 'policies', 'ttl', 'max_ttl', 'bound_cidrs', ...TOKEN_FIELD_NAMES];

/**
 * scrypt's cost for new hashes: N = 2^14, r = 8, p = 1 (16 MiB per hash), about 35 ms per login on
 * the 2-core machine this was measured on. Stored with each hash, so raising it later keeps
 * existing passwords working.
 */
const SCRYPT_COST = { N: 16384, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

interface PasswordHash {
  algorithm: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

interface UserEntry {
  password: PasswordHash;
  token: TokenFields;
}

/**
 * Vault's userpass auth method: users with a password (scrypt-hashed, salted per user) and token
 * fields; `login/<username>` trades the password for a token.
 */
export class UserpassMethod implements AuthMethod {
  /** Serializes changes to one user (a password change racing a policy update must not lose either). */
  private readonly userLocks = new KeyedMutex();
  /** What an unknown user's login is checked against, so it costs the same scrypt work as a known one's. */
  private readonly dummy: Promise<PasswordHash> = hashPassword(randomBytes(16).toString('hex'));

  constructor(
    private readonly view: BarrierView,
    _deps: AuthMethodDeps, // userpass keeps no times: the interface's clock is unused
  ) {}

  isLoginPath(path: string): boolean {
    return /^login\/[^/]+$/.test(path);
  }

  async loginSourceFields(metadata: Record<string, string>): Promise<TokenFields | undefined> {
    return (await readEntry<UserEntry>(this.view, 'users', metadata.username ?? '', USERNAME))?.token;
  }

  async exists(path: string): Promise<boolean> {
    const name = entryName(path, 'users');
    return name === undefined || entryExists(this.view, 'users', name.toLowerCase(), USERNAME);
  }

  async handle(req: AuthRequest): Promise<AuthResponse | undefined> {
    const path = req.operation === 'list' ? req.path.replace(/\/$/, '') : req.path;
    const [area, raw, action, ...rest] = path.split('/');
    if (rest.length || (area !== 'users' && area !== 'login') || (area === 'login' && (raw === undefined || action !== undefined))) {
      throw new NotFoundError(`no handler for route "${req.path}" in a userpass mount`);
    }
    if (area === 'login') {
      if (req.operation !== 'update') throw new InvalidRequestError('login takes POST or PUT');
      return this.login(req, raw!);
    }
    if (raw === undefined) {
      if (req.operation !== 'list') throw new InvalidRequestError('list users with LIST (or GET ?list=true) on users/');
      return listEntryNames(this.view, 'users');
    }
    const name = username(raw);
    if (action === undefined) {
      switch (req.operation) {
        case 'read':
          return { data: userData((await this.requireUser(name, 404)).token) };
        case 'update':
          await this.writeUser(name, req.data);
          return warnIgnoredFields(undefined, req.data, [...USER_FIELDS, 'username']);
        case 'delete':
          await this.userLocks.run(name, () => this.view.delete(`users/${name}`));
          return undefined;
        default:
          throw new InvalidRequestError(`users/${name} takes GET, POST or DELETE`);
      }
    }
    if (action !== 'password' && action !== 'policies') throw new NotFoundError(`no handler for route "${req.path}" in a userpass mount`);
    if (req.operation !== 'update') throw new InvalidRequestError(`users/${name}/${action} takes POST or PUT`);
    switch (action) {
      case 'password': {
        const password = requiredPassword(req.data.password);
        await this.updateUser(name, async (user) => ({ ...user, password: await hashPassword(password) }));
        return undefined;
      }
      case 'policies': {
        const field = req.data.token_policies !== undefined && req.data.token_policies !== null ? 'token_policies' : 'policies';
        if (req.data[field] === undefined || req.data[field] === null) throw new InvalidRequestError('missing token_policies');
        const policies = parsePolicies(req.data[field], field);
        await this.updateUser(name, async (user) => ({ ...user, token: { ...user.token, policies } }));
        return undefined;
      }
    }
  }

  /** Creates a user (a password is required) or updates one (every field given replaces the stored one). */
  private async writeUser(name: string, body: Record<string, unknown>): Promise<void> {
    const token = (existing?: TokenFields) => parseTokenFields(body, existing, ['policies', 'ttl', 'max_ttl', 'bound_cidrs']);
    const newPassword = body.password === undefined || body.password === null ? undefined : requiredPassword(body.password);
    await this.userLocks.run(name, async () => {
      const existing = await this.view.getJson<UserEntry>(`users/${name}`);
      if (!existing && newPassword === undefined) throw new InvalidRequestError('missing password');
      const fields = token(existing?.token);
      const password = newPassword === undefined ? existing!.password : await hashPassword(newPassword);
      await this.view.put(`users/${name}`, jsonBuffer({ password, token: fields } satisfies UserEntry));
    });
  }

  private async updateUser(name: string, change: (user: UserEntry) => Promise<UserEntry>): Promise<void> {
    await this.userLocks.run(name, async () => {
      const user = await this.requireUser(name, 400);
      await this.view.put(`users/${name}`, jsonBuffer(await change(user)));
    });
  }

  /** The same scrypt work and the same answer whether the user is unknown or the password wrong. */
  private async login(req: AuthRequest, raw: string): Promise<AuthResponse> {
    const password = req.data.password;
    if (typeof password !== 'string' || password === '') throw new InvalidRequestError('missing password');
    const name = raw.toLowerCase();
    const user = name.length <= MAX_USERNAME && USERNAME.test(name) ? await this.view.getJson<UserEntry>(`users/${name}`) : undefined;
    const matches = await verifyPassword(password, user?.password ?? (await this.dummy));
    if (!user || !matches) throw new InvalidRequestError(INVALID_CREDENTIALS);
    const ip = req.connection.remoteAddress;
    if (user.token.boundCidrs.length && !cidrContains(user.token.boundCidrs, ip)) {
      throw new PermissionDeniedError(`login from ${ip} is outside the user's token_bound_cidrs`);
    }
    return { auth: loginAuthOf(user.token, `userpass-${name}`, { username: name }) };
  }

  private async requireUser(name: string, status: 400 | 404): Promise<UserEntry> {
    const user = await this.view.getJson<UserEntry>(`users/${name}`);
    if (user) return user;
    const message = `user "${name}" does not exist`;
    throw status === 404 ? new NotFoundError(message) : new InvalidRequestError(message);
  }
}

/** A user as Vault reads it back: the token fields (and the legacy `policies`), never the password. */
function userData(token: TokenFields): Record<string, unknown> {
  return { ...tokenFieldsData(token), policies: [...token.policies] };
}

/** Usernames are case-insensitive, as Vault's: stored and matched lower-cased. */
function username(raw: string): string {
  const name = raw.toLowerCase();
  if (name.length <= MAX_USERNAME && USERNAME.test(name)) return name;
  throw new InvalidRequestError(
    `invalid username "${raw.slice(0, 64)}": usernames are letters, digits, _ . @ and -, ` +
      `starting and ending with a letter or digit, at most ${MAX_USERNAME} characters`,
  );
}

function requiredPassword(v: unknown): string {
  if (v === undefined || v === null) throw new InvalidRequestError('missing password');
  if (typeof v !== 'string') throw new InvalidRequestError('password must be a string');
  if (v === '') throw new InvalidRequestError('password must not be empty');
  if (v.length > MAX_PASSWORD) throw new InvalidRequestError(`password is ${v.length} characters long: at most ${MAX_PASSWORD}`);
  return v;
}

async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(password, salt, SCRYPT_COST);
  return { algorithm: 'scrypt', ...SCRYPT_COST, salt: salt.toString('base64'), hash: hash.toString('base64') };
}

async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const actual = await scryptAsync(password, Buffer.from(stored.salt, 'base64'), { N: stored.N, r: stored.r, p: stored.p }, expected.length);
  return timingSafeEqual(actual, expected);
}

/** scrypt on libuv's thread pool, so a login does not hold the event loop. */
function scryptAsync(password: string, salt: Buffer, cost: { N: number; r: number; p: number }, length = HASH_BYTES): Promise<Buffer> {
  const options: ScryptOptions = { ...cost, maxmem: 256 * cost.N * cost.r };
  return new Promise((resolve, reject) => scrypt(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

