import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './process.js';
import type { TestToken } from './softhsm.js';

/** Debian's NSS softokn, a second PKCS#11 module (libnss3; its database tool comes with libnss3-tools). */
export const NSS_SOFTOKN = '/usr/lib/x86_64-linux-gnu/libsoftokn3.so';
export const NSS_TOKEN_LABEL = 'NSS Certificate DB';
/** The one token softokn's FIPS function list offers: the same database under another name. */
export const NSS_FIPS_TOKEN_LABEL = 'NSS FIPS 140-2 Certificate DB';

const FIPS_LOADER_BUILD = join(import.meta.dirname, '..', 'nss-fips-loader', 'build.sh');

/** An NSS token: a fresh database whose user PIN is random, and the library parameters that name it. */
export interface NssToken extends TestToken {
  libraryParameters: string;
}

/**
 * A new NSS database (`certutil -N`, PIN from a file) in a temp dir. softokn finds it through
 * C_Initialize's library parameters, which keyward takes from `library_parameters`.
 */
export async function freshNssToken(): Promise<NssToken> {
  const dir = await nssDatabase(randomBytes(6).toString('hex'), false);
  return nssToken(dir.path, dir.pin, NSS_SOFTOKN, NSS_TOKEN_LABEL);
}

/**
 * A new NSS database in FIPS mode, served by softokn's FIPS function list through the loader of
 * native-test/nss-fips-loader (pkcs11js only asks a module for C_GetFunctionList, which is the
 * non-FIPS list). The database is flagged FIPS (`modutil -fips true`) before its PIN is set, so
 * NSS holds the PIN to its FIPS rules (at least 7 characters of 3 classes, a leading capital and a
 * trailing digit not counting); softokn itself reads no flag: its FIPS mode is the function list.
 */
export async function freshNssFipsToken(): Promise<NssToken> {
  const dir = await nssDatabase(`kw-${randomBytes(6).toString('hex')}-K`, true);
  return nssToken(dir.path, dir.pin, buildNssFipsLoader(), NSS_FIPS_TOKEN_LABEL);
}

/** Builds the FIPS loader for NSS_SOFTOKN when missing or older than its source, and returns its path. */
export function buildNssFipsLoader(): string {
  const r = spawnSync('bash', [FIPS_LOADER_BUILD, NSS_SOFTOKN], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the NSS FIPS loader failed (needs cc and libp11-kit-dev; scripts/setup.sh installs them): ${r.stderr || r.error?.message}`);
  return r.stdout.trim();
}

async function nssDatabase(pin: string, fips: boolean): Promise<{ path: string; pin: string }> {
  if (!existsSync(NSS_SOFTOKN)) throw new Error(`${NSS_SOFTOKN} is missing (Debian's libnss3; scripts/setup.sh installs it)`);
  const path = await mkdtemp(join(tmpdir(), fips ? 'keyward-nss-fips-' : 'keyward-nss-'));
  await writeFile(join(path, 'pin'), `${pin}\n`, { mode: 0o600 });
  if (fips) execFileSync('modutil', ['-fips', 'true', '-dbdir', `sql:${path}`, '-force'], { stdio: 'pipe' });
  execFileSync('certutil', ['-N', '-d', `sql:${path}`, '-f', join(path, 'pin')], { stdio: 'pipe' });
  return { path, pin };
}

function nssToken(dir: string, pin: string, lib: string, tokenLabel: string): NssToken {
  return {
    dir,
    // NSS reads no SoftHSM2 configuration; a server given this one would fail loudly if it tried.
    confPath: join(dir, 'no-softhsm2.conf'),
    config: { lib, tokenLabel, pin, keyLabel: 'keyward-seal' },
    libraryParameters: `configdir='sql:${dir}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`,
  };
}

/** The seal block for a server on an NSS token, as an operator would write it. */
export function nssSealHcl(token: NssToken): string {
  return `seal "pkcs11" {
  lib                = "${token.config.lib}"
  token_label        = "${token.config.tokenLabel}"
  library_parameters = "${token.libraryParameters}"
  generate_key       = true
}
`;
}

/** A server config with `seal` (by default the one for `token`): file storage in a new temp dir, a tcp listener on a free port. */
export async function nssServerConfig(token: NssToken, seal = nssSealHcl(token)): Promise<{ config: string; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-nss-server-'));
  const port = await freePort();
  const config = join(dir, 'keyward.hcl');
  await writeFile(
    config,
    `storage "file" {\n  path = "${join(dir, 'storage')}"\n}\n\n${seal}\nlistener "tcp" {\n  address     = "127.0.0.1:${port}"\n  tls_disable = true\n}\n`,
  );
  return { config, port };
}
