import { BlockList, isIP, isIPv4 } from 'node:net';
import { InvalidRequestError } from '../core/errors.js';
import { listFieldEntries } from '../core/fields.js';

/** How many CIDR blocks one field takes: enough for any real allow-list, bounded so a request cannot make every check slow. */
const MAX_CIDRS = 256;

/**
 * Parses a list of CIDR blocks as Vault's clients send it (an array, or one comma-separated
 * string) into "address/prefix" strings, or a bare address for a single host (kept bare, as Vault
 * shows it on reads). Anything else is a 400 naming the field and the bad entry.
 */
export function parseCidrList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  const out: string[] = [];
  for (const text of listFieldEntries(v, field, 'CIDR blocks')) {
    const cidr = parseCidr(text, field);
    if (!out.includes(cidr)) out.push(cidr);
  }
  if (out.length > MAX_CIDRS) throw new InvalidRequestError(`${field} has ${out.length} entries: at most ${MAX_CIDRS}`);
  return out;
}

function parseCidr(text: string, field: string): string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  const bits = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (family === 0 || address.includes('%') || !/^\d{1,3}$/.test(prefixText) || prefix > bits) {
    throw new InvalidRequestError(`${field}: "${text}" is not a CIDR block such as "10.0.0.0/8" or an IP address`);
  }
  return slash < 0 ? address.toLowerCase() : `${address.toLowerCase()}/${prefix}`;
}

/**
 * Whether `ip` lies in one of `cidrs` (strings from parseCidrList). An empty list
 * contains nothing: callers treat "no bounds" themselves. IPv4 clients seen on a dual-stack
 * socket ("::ffff:10.1.2.3") are matched as the IPv4 address they are.
 */
export function cidrContains(cidrs: string[], ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped ? mapped[1]! : ip;
  const family = isIP(address);
  if (family === 0) return false;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net = '', prefix] = cidr.split('/');
    const type = isIPv4(net) ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(net, type);
    else list.addSubnet(net, Number(prefix), type);
  }
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Whether the whole block `inner` (a parseCidrList string) lies within one of `outers`: a secret-id's bounds within its role's. */
export function cidrWithin(inner: string, outers: string[]): boolean {
  const [address = ''] = inner.split('/');
  const family = isIP(address);
  return outers.some((outer) => isIP(outer.split('/')[0] ?? '') === family && prefixOf(outer) <= prefixOf(inner) && cidrContains([outer], address));
}

function prefixOf(cidr: string): number {
  const [address = '', prefix] = cidr.split('/');
  return prefix === undefined ? (isIPv4(address) ? 32 : 128) : Number(prefix);
}
