// What a TLS client certificate says about its holder, and whether it chains to a configured
// certificate. node:crypto's X509Certificate does the parsing and the signature checks; the one
// thing it does not expose (the key identifiers Vault puts in a login's metadata) is read from the
// DER here.
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** Longest chain followed (leaf, intermediates, anchor): deeper than any real PKI, bounded so a presented chain cannot make a login slow. */
const MAX_CHAIN_LENGTH = 8;

/** The certificates the client presented, leaf first, or undefined when it presented none. */
export function presentedChain(peer: PeerCertificate | undefined): X509Certificate[] | undefined {
  if (!peer?.raw?.length) return undefined;
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current: Partial<DetailedPeerCertificate> | undefined = peer;
  while (current?.raw?.length && chain.length < MAX_CHAIN_LENGTH) {
    const key = current.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}

/** Every certificate in a PEM bundle; undefined if there is none or a block is not a certificate. */
export function parseCertificates(pem: string): X509Certificate[] | undefined {
  const blocks = pem.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  if (blocks.length === 0) return undefined;
  try {
    return blocks.map((block) => {
      if (!block.startsWith('-----BEGIN CERTIFICATE-----')) throw new Error('not a certificate');
      return new X509Certificate(block);
    });
  } catch {
    return undefined;
  }
}

/** Whether the certificate may authenticate a TLS client: no extended key usage, or one naming client auth. */
export function allowsClientAuth(cert: X509Certificate): boolean {
  // Node 20 calls the extended key usages `keyUsage`; later versions `extKeyUsage`.
  const usages = (cert as { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage;
  return !usages || usages.includes(CLIENT_AUTH) || usages.includes(ANY_EXTENDED_KEY_USAGE);
}

export function validAt(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/**
 * Whether `leaf` verifies up to one of `anchors` (configured CA certificates), through the
 * presented intermediates if needed: each link signed by the next, each issuer a CA valid now and
 * usable for client auth, as Go's x509 verification with ExtKeyUsageClientAuth (Vault's) requires.
 */
export function chainsTo(leaf: X509Certificate, intermediates: X509Certificate[], anchors: X509Certificate[], now: number): boolean {
  const usable = (issuer: X509Certificate) => issuer.ca && validAt(issuer, now) && allowsClientAuth(issuer);
  const issued = (issuer: X509Certificate, subject: X509Certificate) => subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
  const climb = (cert: X509Certificate, path: X509Certificate[]): boolean => {
    if (anchors.some((anchor) => usable(anchor) && issued(anchor, cert))) return true;
    if (path.length >= MAX_CHAIN_LENGTH) return false;
    return intermediates.some((next) => !path.includes(next) && usable(next) && issued(next, cert) && climb(next, [...path, next]));
  };
  return climb(leaf, [leaf]);
}

/** The names a login's constraints look at, as the certificate states them. */
export interface CertificateNames {
  commonName: string;
  organizationalUnits: string[];
  dnsNames: string[];
  emails: string[];
  uris: string[];
}

export function namesOf(cert: X509Certificate): CertificateNames {
  const subject = cert.toLegacyObject().subject as Record<string, string | string[] | undefined>;
  const all = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const sans = subjectAltNames(cert.subjectAltName ?? '');
  return {
    // Go keeps the last CN when there are several; so does Vault's matching.
    commonName: all(subject.CN).at(-1) ?? '',
    organizationalUnits: all(subject.OU),
    dnsNames: sans.filter(([type]) => type === 'DNS').map(([, v]) => v),
    emails: sans.filter(([type]) => type === 'email').map(([, v]) => v),
    uris: sans.filter(([type]) => type === 'URI').map(([, v]) => v),
  };
}

/**
 * Node's subjectAltName text ("DNS:a, email:b, URI:c") as [type, value] pairs. A value with a
 * comma, quote or other special character is written as a JSON string, so it cannot pass for two names.
 */
function subjectAltNames(text: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      end += 1;
      value = JSON.parse(text.slice(colon + 1, end)) as string;
    } else {
      end = text.indexOf(', ', colon);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    out.push([type, value]);
    i = end + 2;
  }
  return out;
}

/** The serial number in decimal, as Go prints a big.Int (and Vault's metadata shows it). */
export function decimalSerial(cert: X509Certificate): string {
  return BigInt(`0x${cert.serialNumber}`).toString(10);
}

/** The subject and authority key identifiers as Vault formats them ("ab:cd:..."), empty when absent. */
export function keyIdentifiers(cert: X509Certificate): { subjectKeyId: string; authorityKeyId: string } {
  const hex = (b: Buffer | undefined) => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '');
  const extensions = extensionValues(cert.raw);
  const skid = extensions.get('551d0e');
  const akid = extensions.get('551d23');
  // SubjectKeyIdentifier ::= OCTET STRING; AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
  const subjectKeyId = skid && derChildren(skid, 0, skid.length)[0];
  const akidSequence = akid && derChildren(akid, 0, akid.length)[0];
  const authorityKeyId = akidSequence && derChildren(akid, akidSequence.start, akidSequence.end).find((c) => c.tag === 0x80);
  return {
    subjectKeyId: hex(subjectKeyId?.tag === 0x04 ? skid!.subarray(subjectKeyId.start, subjectKeyId.end) : undefined),
    authorityKeyId: hex(authorityKeyId ? akid!.subarray(authorityKeyId.start, authorityKeyId.end) : undefined),
  };
}

interface DerNode {
  tag: number;
  /** Where the content starts and ends in the buffer. */
  start: number;
  end: number;
}

/** The TLV nodes directly inside [start, end). The certificate already parsed in OpenSSL, so its DER is well formed; a short read ends the list. */
function derChildren(buf: Buffer, start: number, end: number): DerNode[] {
  const out: DerNode[] = [];
  let i = start;
  while (i + 2 <= end) {
    const tag = buf[i]!;
    let length = buf[i + 1]!;
    let header = 2;
    if (length & 0x80) {
      const bytes = length & 0x7f;
      if (bytes === 0 || bytes > 4 || i + 2 + bytes > end) break;
      length = 0;
      for (let k = 0; k < bytes; k++) length = length * 256 + buf[i + 2 + k]!;
      header += bytes;
    }
    if (i + header + length > end) break;
    out.push({ tag, start: i + header, end: i + header + length });
    i += header + length;
  }
  return out;
}

/** The extensions' values (the extnValue OCTET STRING contents) by their OID's DER bytes in hex. */
function extensionValues(der: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const certificate = derChildren(der, 0, der.length)[0];
  const tbs = certificate && derChildren(der, certificate.start, certificate.end)[0];
  const explicit = tbs && derChildren(der, tbs.start, tbs.end).find((c) => c.tag === 0xa3);
  const list = explicit && derChildren(der, explicit.start, explicit.end)[0];
  if (!list) return out;
  for (const ext of derChildren(der, list.start, list.end)) {
    const parts = derChildren(der, ext.start, ext.end);
    const oid = parts[0];
    const value = parts.at(-1);
    if (oid?.tag === 0x06 && value?.tag === 0x04) out.set(der.subarray(oid.start, oid.end).toString('hex'), der.subarray(value.start, value.end));
  }
  return out;
}
