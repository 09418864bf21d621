import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Core } from '../core/core.js';
import { HttpError } from './errors.js';

/**
 * Who sent a request a standby forwarded: the active node sees the standby's connection, so the
 * standby passes on the client's address and TLS certificate chain, which CIDR-bound tokens and
 * roles and the cert auth method judge. They travel in one header with an HMAC under a key every
 * node of the cluster derives from the barrier, so a client cannot claim another address.
 */
export interface ForwardedClient {
  address: string;
  /** The certificate chain the client presented, leaf first (DER). */
  certificates: Buffer[];
}

const CLIENT_HEADER = 'x-keyward-forwarded-client';
const MAC_HEADER = 'x-keyward-forwarded-client-mac';
/** A forwarded request older than this is refused, so a captured one cannot be replayed for long. */
const MAX_AGE_MS = 60_000;
const KEY_PURPOSE = 'standby forwarding';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on the active node for a request a standby forwarded with a verified client. */
    forwardedClient?: ForwardedClient;
  }
}

/** The client's address: its own connection's, or for a forwarded request the one the standby vouched for. */
export function clientAddress(req: FastifyRequest): string {
  return req.forwardedClient?.address ?? req.ip;
}

/** The TLS client certificate the request came with (forwarded or on its own connection), with its issuer chain. */
export function clientCertificate(req: FastifyRequest): DetailedPeerCertificate | undefined {
  if (req.forwardedClient) return chainAsPeerCertificate(req.forwardedClient.certificates);
  const socket = req.raw.socket as TLSSocket;
  const cert = socket.encrypted ? socket.getPeerCertificate?.(true) : undefined;
  return cert && Object.keys(cert).length > 0 ? cert : undefined;
}

/** The headers a standby adds to a request it forwards, replacing any the client sent. */
export async function forwardedClientHeaders(core: Core, req: FastifyRequest): Promise<Record<string, string>> {
  const certificates: string[] = [];
  for (let c = clientCertificate(req); c?.raw?.length && certificates.length < 10; c = c.issuerCertificate === c ? undefined : c.issuerCertificate) {
    certificates.push(c.raw.toString('base64'));
  }
  const value = Buffer.from(JSON.stringify({ address: clientAddress(req), certificates, at: Date.now() })).toString('base64');
  return { [CLIENT_HEADER]: value, [MAC_HEADER]: mac(await core.tokens.derivedKey(KEY_PURPOSE), req.method, req.url, value) };
}

/** Whether a request says a standby forwarded it for a client. */
export function claimsForwardedClient(req: FastifyRequest): boolean {
  return req.headers[CLIENT_HEADER] !== undefined;
}

/**
 * Takes the client a standby forwarded a request for, once its MAC verifies; a request that
 * claims one without a valid MAC, or too old, is refused (403).
 */
export async function acceptForwardedClient(core: Core, req: FastifyRequest): Promise<void> {
  const value = req.headers[CLIENT_HEADER];
  const given = req.headers[MAC_HEADER];
  const expected = typeof value === 'string' ? mac(await core.tokens.derivedKey(KEY_PURPOSE), req.method, req.url, value) : '';
  if (typeof given !== 'string' || given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
    throw new HttpError(403, 'the forwarded client of this request does not verify: only a node of this cluster may forward requests');
  }
  const parsed = JSON.parse(Buffer.from(value as string, 'base64').toString('utf8')) as { address: string; certificates: string[]; at: number };
  if (Math.abs(Date.now() - parsed.at) > MAX_AGE_MS) throw new HttpError(403, 'the forwarded request is too old; retry');
  req.forwardedClient = { address: parsed.address, certificates: parsed.certificates.map((c) => Buffer.from(c, 'base64')) };
}

function mac(key: Buffer, method: string, url: string, value: string): string {
  return createHmac('sha256', key).update(`${method}\n${url}\n${value}`).digest('hex');
}

/** A chain of DER certificates in the shape Node gives a peer's: `raw` and `issuerCertificate` links. */
function chainAsPeerCertificate(chain: Buffer[]): DetailedPeerCertificate | undefined {
  let issuer: DetailedPeerCertificate | undefined;
  for (let i = chain.length - 1; i >= 0; i--) issuer = { raw: chain[i]!, issuerCertificate: issuer } as unknown as DetailedPeerCertificate;
  return issuer;
}
