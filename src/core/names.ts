// What a policy name, a mount path and an audit device path may look like, decided once for every
// route and store. The ACL check sees the request path exactly as sent (URL-decoded); a store that
// trimmed, lowercased or otherwise cleaned a name up would act on a different name than the one
// the ACL allowed. So a name is accepted only in its canonical form and used exactly as given.
import { InvalidRequestError } from './errors.js';

const POLICY_NAME = /^[a-z0-9][a-z0-9_.@-]{0,127}$/;
/** One segment of a mount or audit path: ASCII letters (either case), digits and . _ -, but not "." or "..". */
const PATH_SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9_.-]+$/;

/** `raw` as a policy name, unchanged; InvalidRequestError (400) unless it is already canonical. */
export function policyName(raw: string): string {
  if (isPolicyName(raw)) return raw;
  throw notCanonical(
    'policy name',
    raw,
    'policy names are lower case letters, digits and . _ @ -, starting with a letter or digit, at most 128 characters, without spaces',
    suggestion(raw.trim().normalize('NFKC').toLowerCase(), isPolicyName),
  );
}

/** Whether `name` is a canonical policy name (a token may hold names from before names were checked). */
export function isPolicyName(name: string): boolean {
  return POLICY_NAME.test(name);
}

/**
 * The stored form ("kv/") of a mount path a request gives as "kv" or "kv/": segments of ASCII
 * letters, digits and . _ -, case kept as given (mount paths are case-sensitive, as in Vault and
 * in the ACL). The one trailing slash is the only variation accepted, because Vault's clients
 * send both spellings; routes check the token on both (see `requestSpellings`).
 */
export function mountPath(raw: string): string {
  if (isMountPath(raw)) return `${withoutTrailingSlash(raw)}/`;
  throw notCanonical(
    'mount path',
    raw,
    'mount paths are segments of letters, digits and . _ - joined by single "/", with no leading "/" and at most one trailing "/"',
    suggestion(raw.trim().replace(/\/+/g, '/').replace(/^\//, ''), isMountPath),
  );
}

/** The stored form ("file/") of an audit device path given as "file" or "file/": one segment, as for mount paths. */
export function auditPath(raw: string): string {
  if (isAuditPath(raw)) return `${withoutTrailingSlash(raw)}/`;
  throw notCanonical(
    'audit device path',
    raw,
    'audit device paths are one segment of letters, digits and . _ -, with at most one trailing "/"',
    suggestion(raw.trim().replace(/^\/+|\/+$/g, ''), isAuditPath),
  );
}

/**
 * Both ways a request may spell a stored mount or audit path ("kv/" → "kv" and "kv/"). An ACL rule
 * names one spelling only, so a route acting on the stored path must be allowed on each.
 */
export function requestSpellings(stored: string): [string, string] {
  return [stored.slice(0, -1), stored];
}

function isMountPath(raw: string): boolean {
  return withoutTrailingSlash(raw).split('/').every((segment) => PATH_SEGMENT.test(segment));
}

function isAuditPath(raw: string): boolean {
  return PATH_SEGMENT.test(withoutTrailingSlash(raw));
}

function withoutTrailingSlash(raw: string): string {
  return raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

/** A cleaned-up spelling to mention in the error, when it would be accepted; never acted on. */
function suggestion(candidate: string, accepted: (s: string) => boolean): string | undefined {
  return accepted(candidate) ? candidate : undefined;
}

function notCanonical(kind: string, raw: string, rule: string, suggested: string | undefined): InvalidRequestError {
  const hint = suggested === undefined ? '' : `; use "${suggested}"`;
  return new InvalidRequestError(`${kind} ${quoted(raw)} is not canonical: ${rule}${hint}`);
}

/** `raw` in quotes with whitespace, control characters and non-ASCII lookalikes (the Kelvin sign, U+212A) escaped, so they can be seen. */
function quoted(raw: string): string {
  return JSON.stringify(raw).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
