// Vault's help requests: GET /v1/<path>?help=1 answers {help, see_also} with what the area
// serving <path> does and the paths it takes (what `keyward path-help` prints). Answered after the
// token check, so a help request needs a token allowed to read the path, like any other read (a
// login path, which takes no token, answers anyone).
import type { FastifyInstance } from 'fastify';
import type { Core } from '../core/core.js';
import { apiPath } from './auth.js';

interface Area {
  description: string;
  /** [path pattern below the mount, what it does] */
  paths: Array<[string, string]>;
}

const AREAS: Record<string, Area> = {
  sys: {
    description:
      'The system backend: the server\'s own configuration and operations. It mounts secrets engines and auth methods, keeps ACL policies and audit devices, wraps responses, and runs the seal, rekey, key rotation and root-token generation ceremonies.',
    paths: [
      ['sys/mounts, sys/mounts/<path>, sys/mounts/<path>/tune', 'list, enable, read, tune and disable secrets engines'],
      ['sys/remount', 'move a secrets engine to another path, keeping its data'],
      ['sys/auth, sys/auth/<path>, sys/auth/<path>/tune', 'list, enable, tune and disable auth methods'],
      ['sys/policy/<name>, sys/policies/acl/<name>', 'read, write, list and delete ACL policies'],
      ['sys/capabilities, sys/capabilities-self', 'what a token may do on a path'],
      ['sys/audit/<path>, sys/audit-hash/<path>', 'enable and disable audit devices; hash a value as a device does'],
      ['sys/wrapping/wrap, lookup, unwrap, rewrap', 'response wrapping: single-use tokens holding a response'],
      ['sys/init, sys/seal-status, sys/seal, sys/unseal, sys/health, sys/leader, sys/step-down', 'initialization, seal state and high availability'],
      ['sys/rekey/*, sys/rotate, sys/rotate/*, sys/key-status, sys/generate-root/*', 'new shares, new encryption-key terms and new root tokens'],
      ['sys/hsm', 'the PKCS#11 module and token in use'],
      ['sys/metrics', 'Prometheus metrics'],
    ],
  },
  token: {
    description: 'The token store, the built-in auth method: creates, looks up, renews and revokes tokens, and keeps token roles that fix the policies, TTLs and period of the tokens created from them.',
    paths: [
      ['create, create-orphan, create/<role>', 'create a token (a child of the caller\'s unless orphan), or one from a role'],
      ['lookup, lookup-self, lookup-accessor', 'show a token'],
      ['renew, renew-self, renew-accessor', 'extend a token\'s TTL'],
      ['revoke, revoke-self, revoke-orphan, revoke-accessor', 'revoke a token (and its children unless orphan)'],
      ['roles, roles/<role>', 'list, read, write and delete token roles'],
      ['accessors', 'list token accessors (sudo)'],
    ],
  },
  approle: {
    description: 'AppRole: machines log in with a role-id and a secret-id. A role fixes the policies and token TTLs; its secret-ids can be bound by TTL, number of uses and source CIDR, and delivered response-wrapped.',
    paths: [
      ['role, role/<role>', 'list, read, write and delete roles'],
      ['role/<role>/role-id', 'read or set the role\'s role-id'],
      ['role/<role>/secret-id', 'generate a secret-id (write) or list their accessors (LIST)'],
      ['role/<role>/custom-secret-id', 'set a secret-id of the caller\'s choosing'],
      ['role/<role>/secret-id/lookup, role/<role>/secret-id/destroy', 'inspect and revoke a secret-id'],
      ['role/<role>/secret-id-accessor/lookup, role/<role>/secret-id-accessor/destroy', 'the same by the secret-id\'s accessor'],
      ['tidy/secret-id', 'remove expired secret-ids'],
      ['login', 'log in: role_id and secret_id'],
    ],
  },
  userpass: {
    description: 'Userpass: people log in with a username and a password, stored as a slow salted hash. Each user has its own policies and token TTLs.',
    paths: [
      ['users, users/<name>', 'list, read, write and delete users'],
      ['users/<name>/password, users/<name>/policies', 'change a user\'s password or policies'],
      ['login/<name>', 'log in: password'],
    ],
  },
  cert: {
    description: 'TLS certificates: clients log in with the certificate they present on the TLS connection, checked against the CA certificates configured per role.',
    paths: [
      ['config', 'the method\'s settings'],
      ['certs, certs/<name>', 'list, read, write and delete trusted certificate roles (certificate, allowed names, policies, TTLs)'],
      ['login', 'log in with the connection\'s client certificate (name: one role to try)'],
    ],
  },
  jwt: {
    description: 'JWT: workloads log in with a signed JSON Web Token, checked against the configured keys (PEM or JWKS) and a role\'s bound audiences, subject and claims.',
    paths: [
      ['config', 'the keys (jwt_validation_pubkeys, jwks_url), bound issuer and default role'],
      ['role, role/<name>', 'list, read, write and delete roles'],
      ['login', 'log in: jwt and role'],
    ],
  },
  kv1: {
    description: 'The key/value secrets engine, version 1: one value per path, written over in place.',
    paths: [['<path>', 'read, write, delete and list secrets']],
  },
  kv2: {
    description: 'The key/value secrets engine, version 2: every write is a new version; old versions can be read, deleted, undeleted and destroyed, and writes can be made conditional (check-and-set).',
    paths: [
      ['config', 'the mount\'s max_versions, cas_required and delete_version_after'],
      ['data/<path>', 'read (?version=N), write (options.cas) and patch a secret; delete its latest version'],
      ['metadata/<path>', 'read, write, list and delete a secret\'s metadata and all its versions'],
      ['delete/<path>, undelete/<path>, destroy/<path>', 'delete, restore or remove versions'],
    ],
  },
  transit: {
    description: 'The transit secrets engine: encryption as a service. Named keys never leave the server; clients send data to encrypt, decrypt, sign, verify, HMAC or hash, and keys are rotated with old versions kept for decryption.',
    paths: [
      ['keys, keys/<name>, keys/<name>/config, keys/<name>/rotate', 'create, read, configure, rotate and delete keys'],
      ['encrypt/<name>, decrypt/<name>, rewrap/<name>', 'encrypt and decrypt data; rewrap ciphertext to the latest key version'],
      ['datakey/<plaintext|wrapped>/<name>', 'generate a data key encrypted under the named key'],
      ['sign/<name>, verify/<name>, hmac/<name>', 'signatures and HMACs'],
      ['hash, random', 'hashes and random bytes'],
    ],
  },
  cubbyhole: {
    description: 'The cubbyhole: a private store per token, readable only with that token and gone when it is revoked. Response wrapping keeps wrapped responses in the wrapping token\'s cubbyhole.',
    paths: [['<path>', 'read, write, delete and list the token\'s own values']],
  },
};

function helpText(area: Area, mount: string): string {
  const paths = area.paths.map(([p, what]) => `    ${mount}${p.replaceAll(', ', `, ${mount}`)}\n        ${what}`).join('\n\n');
  return `## DESCRIPTION\n\n${area.description}\n\n## PATHS\n\n${paths}\n`;
}

/** The area serving an API path and its mount, or undefined when nothing serves it. */
function areaOf(core: Core, path: string): [Area, string] | undefined {
  if (path === 'sys' || path.startsWith('sys/')) return [AREAS.sys!, ''];
  if (path === 'cubbyhole' || path.startsWith('cubbyhole/')) return [AREAS.cubbyhole!, 'cubbyhole/'];
  if (path.startsWith('auth/')) {
    const below = path.slice('auth/'.length);
    const method = core.auth.resolve(below);
    const area = method && AREAS[method.type];
    return area ? [area, `auth/${method.path}`] : undefined;
  }
  const mount = core.mounts.resolve(path);
  if (!mount) return undefined;
  const area = mount.type === 'kv' ? AREAS[mount.options.version === '2' ? 'kv2' : 'kv1'] : AREAS[mount.type];
  return area ? [area, mount.path] : undefined;
}

function isLoginPath(core: Core, path: string): boolean {
  const routed = path.startsWith('auth/') ? core.authMethods.route(path.slice('auth/'.length)) : undefined;
  return routed !== undefined && routed.method.isLoginPath(routed.path);
}

export function registerPathHelp(app: FastifyInstance, core: Core): void {
  // A callback hook, not an async one: it runs on every request, and a promise each would cost reads.
  app.addHook('preHandler', (req, reply, done) => {
    const help = (req.query as Record<string, unknown> | undefined)?.help;
    if (req.method !== 'GET' || (help !== '1' && help !== 'true')) return done();
    const path = apiPath(req);
    // Only a request that passed the token check, or one for a login path (which takes none); others go on to their 403 or 404.
    if (!req.tokenEntry && !isLoginPath(core, path)) return done();
    const found = areaOf(core, path);
    if (!found) return done();
    // Answered here: the route's handler does not run.
    reply.send({ help: helpText(...found), see_also: null });
  });
}
