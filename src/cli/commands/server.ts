import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerConfig } from '../../config/config.js';
import { DEFAULTS } from '../../config/config.js';
import { loadConfigFile } from '../../config/load.js';
import { createLogger } from '../../logger.js';
import { provisionSoftHsmToken } from '../../pkcs11/softhsm.js';
import { startService, type Service } from '../../service.js';
import type { Command, Io } from '../command.js';
import { UsageError } from '../flags.js';

const DEV_TOKEN_LABEL = 'keyward-dev';

/** Runs until SIGINT/SIGTERM, then closes the listener and seals (persisting counts) before exiting. */
function runUntilSignal(service: Service, cleanup?: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const stop = () => {
      service
        .close()
        .then(() => cleanup?.())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function runDev(flags: Record<string, unknown>, io: Io): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-dev-'));
  const pin = randomBytes(8).toString('hex');
  const hsm = await provisionSoftHsmToken(join(dataDir, 'softhsm'), DEV_TOKEN_LABEL, pin, randomBytes(8).toString('hex'));
  // SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, which happens after this point.
  process.env.SOFTHSM2_CONF = hsm.confPath;
  const config: ServerConfig = {
    storage: { type: 'file', path: join(dataDir, 'storage') },
    seal: { lib: DEFAULTS.lib, tokenLabel: DEV_TOKEN_LABEL, pin, keyLabel: DEFAULTS.keyLabel, generateKey: true },
    listener: { address: (flags['dev-listen-address'] as string) || DEFAULTS.address, tlsDisable: true },
    logLevel: (flags['log-level'] as string) || 'info',
  };
  const log = createLogger(config.logLevel);
  const service = await startService(config, log);
  // secret/ is KV version 2, as on Vault's dev server (its tutorials and clients expect secret/data/...).
  const init = await service.core.init(1, 1, [], '2');
  const unsealKey = init.keys[0]!.toString('base64');
  await service.core.unseal(unsealKey, false);
  io.out(
    [
      'WARNING! dev mode is enabled! In this mode, keyward runs on a throwaway SoftHSM2 token and',
      'file storage in a temporary directory, starts unsealed with a single unseal key, and',
      'deletes everything when it stops. Never run dev mode in production.',
      '',
      'You may need to set the following environment variables:',
      '',
      `    $ export KEYWARD_ADDR='${service.url}'`,
      `    $ export KEYWARD_TOKEN='${init.rootToken}'`,
      '',
      `The operator console is at ${service.url}/ui/ (sign in with the root token below).`,
      '',
      'The unseal key and root token are displayed below in case you want to',
      'seal/unseal the server or re-authenticate.',
      '',
      `Unseal Key: ${unsealKey}`,
      `Root Token: ${init.rootToken}`,
      `Data Directory: ${dataDir}`,
      '',
      'Development mode should NOT be used in production installations!',
      '',
    ].join('\n'),
  );
  return runUntilSignal(service, () => rm(dataDir, { recursive: true, force: true }));
}

export const serverCommand: Command = {
  flags: {
    config: { kind: 'string', help: 'path to an HCL or JSON config file', default: '' },
    dev: { kind: 'bool', help: 'provision a SoftHSM2 token and file storage in a temp dir, init with one share and unseal', default: false },
    'dev-listen-address': { kind: 'string', help: 'address for the dev listener', default: DEFAULTS.address },
    'log-level': { kind: 'string', help: 'trace, debug, info, warn or error (overrides log_level in the config)', default: '' },
  },
  async run({ flags, args }, io) {
    if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
    if (flags.dev) return runDev(flags, io);
    if (!flags.config) throw new UsageError('give -config=FILE (or -dev)');
    const config = await loadConfigFile(flags.config as string, io.env);
    if (flags['log-level']) config.logLevel = flags['log-level'] as string;
    const service = await startService(config, createLogger(config.logLevel));
    return runUntilSignal(service);
  },
};
