import type { X509Certificate } from 'node:crypto';
import type { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError, PermissionDeniedError } from '../core/errors.js';
import { optionalBool, parseStringList } from '../core/fields.js';
import { jsonBuffer } from '../engines/engine.js';
import {
  allowsClientAuth,
  type CertificateNames,
  chainsTo,
  decimalSerial,
  keyIdentifiers,
  namesOf,
  parseCertificates,
  presentedChain,
  validAt,
} from './cert-chain.js';
import { globMatch } from './glob.js';
import { cidrContains } from './cidr.js';
import { type AuthMethod, type AuthMethodDeps, type AuthRequest, type AuthResponse, refuseUnserved, warnIgnoredFields } from './method.js';
import { entryExists, entryName, listEntryNames, readEntry } from './named-entries.js';
import { loginAuthOf, parseTokenFields, TOKEN_FIELD_NAMES, tokenFieldsData, type TokenFields } from './token-fields.js';

/** Vault's answer to any login that does not verify; the same whichever check failed, so it tells a prober nothing. */
const LOGIN_FAILED = 'invalid certificate or no client certificate supplied';
/** Vault lower-cases certificate names; here a name must already be in that form, so the ACL path and the stored name agree. */
const CERT_NAME = /^[a-z0-9_](?:[a-z0-9_.-]{0,126}[a-z0-9_])?$/;
const MAX_CERTIFICATES_PER_ENTRY = 64;

/** One trusted certificate entry (certs/<name>): a CA bundle or a single client certificate, with the constraints a login must meet. */
interface CertEntry {
  /** The PEM as given: CA certificates are trust anchors, any other certificate matches only itself. */
  certificate: string;
  displayName: string;
  allowedNames: string[];
  allowedCommonNames: string[];
  allowedDnsSans: string[];
  allowedEmailSans: string[];
  allowedUriSans: string[];
  allowedOrganizationalUnits: string[];
  token: TokenFields;
}

interface CertConfig {
  /**
   * Vault binds a token's renewals to the certificate it logged in with. Auth methods here see
   * no renewals, so a bound login (Vault's default) issues a token that cannot be renewed: the
   * client logs in again with its certificate instead. With binding disabled tokens renew freely.
   */
  disableBinding: boolean;
  /** Cache sizes: accepted for Vault's clients and read back; nothing here caches by them. */
  ocspCacheSize: number;
  roleCacheSize: number;
}

const DEFAULT_CONFIG: CertConfig = { disableBinding: false, ocspCacheSize: 100, roleCacheSize: 200 };
const CONFIG_FIELDS = ['disable_binding', 'enable_identity_alias_metadata', 'ocsp_cache_size', 'role_cache_size'];

/** Request fields for features this method does not have: refused when given a value, accepted when empty (hvac sends them empty). */
const UNOFFERED_ENTRY_FIELDS: Record<string, string> = {
  required_extensions: 'required_extensions is not offered: constrain logins with allowed_common_names, allowed_dns_sans, allowed_email_sans, allowed_uri_sans or allowed_organizational_units',
  allowed_metadata_extensions: 'allowed_metadata_extensions is not offered: login metadata holds cert_name, common_name, serial_number, subject_key_id and authority_key_id',
  ocsp_enabled: 'OCSP checking (ocsp_*) is not offered',
  ocsp_ca_certificates: 'OCSP checking (ocsp_*) is not offered',
  ocsp_servers_override: 'OCSP checking (ocsp_*) is not offered',
  ocsp_fail_open: 'OCSP checking (ocsp_*) is not offered',
  ocsp_query_all_servers: 'OCSP checking (ocsp_*) is not offered',
};

/** Vault's TLS certificate auth method: clients log in with the certificate their TLS connection presented. */
export class CertMethod implements AuthMethod {
  constructor(
    private readonly view: BarrierView,
    private readonly deps: AuthMethodDeps,
  ) {}

  isLoginPath(path: string): boolean {
    return path === 'login';
  }

  async loginSourceFields(metadata: Record<string, string>): Promise<TokenFields | undefined> {
    return (await readEntry<CertEntry>(this.view, 'certs', metadata.cert_name ?? '', CERT_NAME))?.token;
  }

  async exists(path: string): Promise<boolean> {
    const name = entryName(path, 'certs');
    if (name) return entryExists(this.view, 'certs', name, CERT_NAME);
    return path === 'config' && (await this.view.exists('config'));
  }

  async handle(req: AuthRequest): Promise<AuthResponse | undefined> {
    const { operation, path } = req;
    if (path === 'login' && operation === 'update') return this.login(req);
    if (path === 'config' && operation === 'read') return { data: configData(await this.config()) };
    if (path === 'config' && operation === 'update') return this.writeConfig(req.data);
    if ((path === 'certs' || path === 'certs/') && operation === 'list') return listEntryNames(this.view, 'certs');
    const name = entryName(path, 'certs');
    if (name !== undefined) {
      if (operation === 'read') return { data: entryData(await this.entry(name)) };
      if (operation === 'update') return this.writeEntry(certName(name), req.data);
      if (operation === 'delete') {
        await this.view.delete(`certs/${certName(name)}`);
        return undefined;
      }
    }
    if (path === 'crls' || path.startsWith('crls/')) {
      throw new InvalidRequestError('certificate revocation lists (crls/) are not offered: to stop trusting certificates, delete or replace their certs/ entry');
    }
    return refuseUnserved(operation, path, ['login', 'config', 'certs', 'certs/'].includes(path) || name !== undefined);
  }

  private async config(): Promise<CertConfig> {
    return { ...DEFAULT_CONFIG, ...(await this.view.getJson<CertConfig>('config')) };
  }

  private async writeConfig(body: Record<string, unknown>): Promise<AuthResponse | undefined> {
    const config = await this.config();
    config.disableBinding = optionalBool(body.disable_binding, 'disable_binding') ?? config.disableBinding;
    if (optionalBool(body.enable_identity_alias_metadata, 'enable_identity_alias_metadata')) {
      throw new InvalidRequestError('enable_identity_alias_metadata is not offered: keyward has no identity store');
    }
    if (body.ocsp_cache_size !== undefined && body.ocsp_cache_size !== null) config.ocspCacheSize = wholeNumber(body.ocsp_cache_size, 'ocsp_cache_size', 2);
    if (body.role_cache_size !== undefined && body.role_cache_size !== null) config.roleCacheSize = wholeNumber(body.role_cache_size, 'role_cache_size', -1);
    await this.view.put('config', jsonBuffer(config));
    return warnIgnoredFields(undefined, body, CONFIG_FIELDS);
  }

  private async entry(name: string): Promise<CertEntry> {
    const entry = await readEntry<CertEntry>(this.view, 'certs', name, CERT_NAME);
    if (!entry) throw new NotFoundError('');
    return entry;
  }

  private async writeEntry(name: string, body: Record<string, unknown>): Promise<AuthResponse | undefined> {
    for (const [field, message] of Object.entries(UNOFFERED_ENTRY_FIELDS)) {
      if (hasValue(body[field])) throw new InvalidRequestError(message);
    }
    const existing = await this.view.getJson<CertEntry>(`certs/${name}`);
    const certificate = body.certificate ?? existing?.certificate;
    if (certificate === undefined || certificate === null || certificate === '') {
      throw new InvalidRequestError('certificate is required: the PEM of the CA certificate(s) to trust, or of the one client certificate to accept');
    }
    checkCertificate(certificate);
    const list = (field: string, current: string[] | undefined) => (hasField(body, field) ? parseStringList(body[field], field) : (current ?? []));
    const displayName = body.display_name ?? existing?.displayName ?? '';
    if (typeof displayName !== 'string') throw new InvalidRequestError('display_name must be a string');
    const entry: CertEntry = {
      certificate,
      displayName,
      allowedNames: list('allowed_names', existing?.allowedNames),
      allowedCommonNames: list('allowed_common_names', existing?.allowedCommonNames),
      allowedDnsSans: list('allowed_dns_sans', existing?.allowedDnsSans),
      allowedEmailSans: list('allowed_email_sans', existing?.allowedEmailSans),
      allowedUriSans: list('allowed_uri_sans', existing?.allowedUriSans),
      allowedOrganizationalUnits: list('allowed_organizational_units', existing?.allowedOrganizationalUnits),
      token: parseTokenFields(body, existing?.token, ['policies', 'ttl', 'max_ttl', 'period', 'bound_cidrs']),
    };
    await this.view.put(`certs/${name}`, jsonBuffer(entry));
    return warnIgnoredFields(undefined, body, ENTRY_FIELDS);
  }

  private async login(req: AuthRequest): Promise<AuthResponse> {
    const chain = presentedChain(req.connection.peerCertificate);
    if (!chain) throw new InvalidRequestError('client certificate must be supplied');
    const [leaf, ...intermediates] = chain as [X509Certificate, ...X509Certificate[]];
    const now = this.deps.now();
    if (!validAt(leaf, now) || !allowsClientAuth(leaf)) throw new InvalidRequestError(LOGIN_FAILED);
    const requested = req.data.name;
    if (requested !== undefined && requested !== null && typeof requested !== 'string') throw new InvalidRequestError('name must be a string');
    const names = requested ? [requested] : (await this.view.list('certs/')).sort();
    const leafNames = namesOf(leaf);
    let matched: [string, CertEntry] | undefined;
    for (const name of names) {
      const entry = await readEntry<CertEntry>(this.view, 'certs', name, CERT_NAME);
      if (entry && trusts(entry, leaf, intermediates, now) && meetsConstraints(entry, leafNames)) {
        matched = [name, entry];
        break;
      }
    }
    if (!matched) throw new InvalidRequestError(LOGIN_FAILED);
    const [name, entry] = matched;
    if (entry.token.boundCidrs.length > 0 && !cidrContains(entry.token.boundCidrs, req.connection.remoteAddress)) throw new PermissionDeniedError();
    const ids = keyIdentifiers(leaf);
    const auth = loginAuthOf(entry.token, `cert-${entry.displayName || name}`, {
      cert_name: name,
      common_name: leafNames.commonName,
      serial_number: decimalSerial(leaf),
      subject_key_id: ids.subjectKeyId,
      authority_key_id: ids.authorityKeyId,
    });
    auth.renewable = (await this.config()).disableBinding;
    return { auth };
  }
}

/** A configured CA in the entry verifies the leaf (through presented intermediates), or the entry lists the leaf itself. */
function trusts(entry: CertEntry, leaf: X509Certificate, intermediates: X509Certificate[], now: number): boolean {
  const trusted = parseCertificates(entry.certificate) ?? [];
  if (trusted.some((cert) => !cert.ca && cert.raw.equals(leaf.raw))) return true;
  return chainsTo(leaf, intermediates, trusted.filter((cert) => cert.ca), now);
}

/** The fields a certs/<name> write reads (the unoffered ones are read to be refused). */
const ENTRY_FIELDS = [
  'name',
  'certificate',
  'display_name',
  'allowed_names',
  'allowed_common_names',
  'allowed_dns_sans',
  'allowed_email_sans',
  'allowed_uri_sans',
  'allowed_organizational_units',
  ...Object.keys(UNOFFERED_ENTRY_FIELDS),
  ...TOKEN_FIELD_NAMES,
  'policies',
  'ttl',
  'max_ttl',
  'period',
  'bound_cidrs',
];

/** Vault's constraints: each non-empty list needs one pattern to match one of the certificate's names of that kind. */
function meetsConstraints(entry: CertEntry, names: CertificateNames): boolean {
  const anyMatch = (patterns: string[], values: string[]) => patterns.length === 0 || patterns.some((p) => values.some((v) => globMatch(p, v)));
  return (
    anyMatch(entry.allowedNames, [names.commonName, ...names.dnsNames, ...names.emails]) &&
    anyMatch(entry.allowedCommonNames, [names.commonName]) &&
    anyMatch(entry.allowedDnsSans, names.dnsNames) &&
    anyMatch(entry.allowedEmailSans, names.emails) &&
    anyMatch(entry.allowedUriSans, names.uris) &&
    anyMatch(entry.allowedOrganizationalUnits, names.organizationalUnits)
  );
}

function checkCertificate(pem: unknown): asserts pem is string {
  const certs = typeof pem === 'string' ? parseCertificates(pem) : undefined;
  if (!certs) throw new InvalidRequestError('certificate must be one or more PEM-encoded certificates (-----BEGIN CERTIFICATE-----)');
  if (certs.length > MAX_CERTIFICATES_PER_ENTRY) {
    throw new InvalidRequestError(`certificate has ${certs.length} certificates: at most ${MAX_CERTIFICATES_PER_ENTRY}`);
  }
  // As Vault: a client certificate trusted on its own must be usable for client authentication.
  if (certs.some((cert) => !cert.ca && !allowsClientAuth(cert))) {
    throw new InvalidRequestError('non-CA certificates must have TLS client authentication among their extended key usages');
  }
}

function certName(raw: string): string {
  if (CERT_NAME.test(raw)) return raw;
  const lower = raw.toLowerCase();
  const hint = CERT_NAME.test(lower) ? ` (use "${lower}")` : '';
  throw new InvalidRequestError(
    `certificate name "${raw}" is not valid${hint}: names are lower case letters, digits, _ . and -, starting and ending with a letter, digit or _, at most 128 characters`,
  );
}

function entryData(entry: CertEntry): Record<string, unknown> {
  return {
    certificate: entry.certificate,
    display_name: entry.displayName,
    allowed_names: entry.allowedNames,
    allowed_common_names: entry.allowedCommonNames,
    allowed_dns_sans: entry.allowedDnsSans,
    allowed_email_sans: entry.allowedEmailSans,
    allowed_uri_sans: entry.allowedUriSans,
    allowed_organizational_units: entry.allowedOrganizationalUnits,
    required_extensions: [],
    allowed_metadata_extensions: [],
    ocsp_enabled: false,
    ocsp_ca_certificates: '',
    ocsp_servers_override: [],
    ocsp_fail_open: false,
    ocsp_query_all_servers: false,
    ...tokenFieldsData(entry.token),
    policies: [...entry.token.policies],
  };
}

function configData(config: CertConfig): Record<string, unknown> {
  return {
    disable_binding: config.disableBinding,
    enable_identity_alias_metadata: false,
    ocsp_cache_size: config.ocspCacheSize,
    role_cache_size: config.roleCacheSize,
  };
}

function hasField(body: Record<string, unknown>, field: string): boolean {
  return body[field] !== undefined && body[field] !== null;
}

/** Whether a field carries a value (not absent, null, false, 0, "" or []): what Vault's clients send for "unset". */
function hasValue(v: unknown): boolean {
  return !(v === undefined || v === null || v === false || v === 'false' || v === 0 || v === '' || (Array.isArray(v) && v.length === 0));
}

function wholeNumber(v: unknown, field: string, min: number): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) throw new InvalidRequestError(`${field} must be a whole number of at least ${min}`);
  return n;
}
