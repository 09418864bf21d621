/**
 * Vault's documented response shapes (developer.hashicorp.com/vault/api-docs), as JSON schemas
 * (draft 4, which tv4 reads), for the calls whose node-vault command carries no response schema of
 * its own, and for node-vault's generic read, write, list and delete. Each names the status Vault
 * documents: a 204 has no body, which node-vault hands back as ''.
 */
export interface ResponseShape {
  status: 200 | 204;
  schema: object;
}

const string = { type: 'string' };
const boolean = { type: 'boolean' };
const count = { type: 'integer', minimum: 0 };
const strings = { type: 'array', items: string };

/** A reply with no body: node-vault's value for it is the empty string. */
export const NO_CONTENT: ResponseShape = { status: 204, schema: { type: 'string', maxLength: 0 } };

/** Vault's envelope for logical responses: the payload under `data`, with lease fields beside it. */
function envelope(data: object): object {
  return {
    type: 'object',
    required: ['data', 'lease_id', 'renewable', 'lease_duration'],
    properties: {
      request_id: string,
      lease_id: string,
      renewable: boolean,
      lease_duration: count,
      data,
      wrap_info: { type: ['object', 'null'] },
      warnings: { type: ['array', 'null'], items: string },
      auth: { type: ['object', 'null'] },
    },
  };
}

/** A map whose every key ends in "/" (mount and audit paths), each value of shape `entry`. */
function byMountPath(entry: object, required: readonly string[]): object {
  return { type: 'object', required, patternProperties: { '/$': entry } };
}

/** GET sys/mounts: each mount under data, keyed by its path ("secret/"). */
const mount = {
  type: 'object',
  required: ['type', 'description', 'accessor', 'config', 'options', 'local', 'seal_wrap'],
  properties: {
    type: string,
    description: string,
    accessor: string,
    uuid: string,
    config: {
      type: 'object',
      required: ['default_lease_ttl', 'max_lease_ttl', 'force_no_cache'],
      properties: { default_lease_ttl: count, max_lease_ttl: count, force_no_cache: boolean },
    },
    options: { type: ['object', 'null'], additionalProperties: string },
    local: boolean,
    seal_wrap: boolean,
    external_entropy_access: boolean,
  },
};

/** GET sys/audit: each device keyed by its path ("file/"). */
const auditDevice = {
  type: 'object',
  required: ['type', 'description', 'options'],
  properties: { type: string, description: string, options: { type: 'object', additionalProperties: string }, path: string, local: boolean },
};

/** KV v2 version metadata, as a write returns it and as metadata lists it per version. */
const versionMetadata = {
  type: 'object',
  required: ['created_time', 'deletion_time', 'destroyed'],
  properties: { created_time: { type: 'string', minLength: 1 }, deletion_time: string, destroyed: boolean, version: { type: 'integer', minimum: 1 } },
};

/** The node-vault commands this suite calls whose commands.js entry has no response schema. */
export const COMMAND_RESPONSES: Record<string, ResponseShape> = {
  // GET sys/init
  initialized: { status: 200, schema: { type: 'object', required: ['initialized'], properties: { initialized: boolean } } },
  // GET sys/mounts: the mounts under data (older clients read them at the top level too).
  mounts: { status: 200, schema: envelope(byMountPath(mount, ['secret/'])) },
  // POST sys/mounts/:path, DELETE sys/mounts/:path
  mount: NO_CONTENT,
  unmount: NO_CONTENT,
  // POST :mount/destroy/:path (KV v2)
  destroySecretVersions: NO_CONTENT,
  // GET sys/policy, GET sys/policy/:name, PUT and DELETE sys/policy/:name
  policies: { status: 200, schema: { type: 'object', required: ['policies'], properties: { policies: { ...strings, minItems: 1 } } } },
  getPolicy: { status: 200, schema: { type: 'object', required: ['name', 'rules'], properties: { name: string, rules: string } } },
  addPolicy: NO_CONTENT,
  removePolicy: NO_CONTENT,
  // POST auth/token/revoke-accessor, POST auth/token/revoke-orphan
  tokenRevokeAccessor: NO_CONTENT,
  tokenRevokeOrphan: NO_CONTENT,
  // GET sys/audit, PUT and DELETE sys/audit/:path
  audits: { status: 200, schema: byMountPath(auditDevice, []) },
  enableAudit: NO_CONTENT,
  disableAudit: NO_CONTENT,
  // PUT sys/rotate, DELETE sys/generate-root/attempt, PUT sys/seal
  rotate: NO_CONTENT,
  generateRootCancel: NO_CONTENT,
  seal: NO_CONTENT,
};

/** node-vault's generic calls, by the secrets engine and operation they reach. */
export const GENERIC_RESPONSES = {
  // GET :mount/:path (KV v1)
  kv1Read: { status: 200, schema: envelope({ type: 'object' }) },
  // PUT :mount/:path (KV v1), DELETE :mount/:path (KV v1)
  kv1Write: NO_CONTENT,
  kv1Delete: NO_CONTENT,
  // LIST :mount/:path (KV v1), LIST :mount/metadata/:path (KV v2)
  list: { status: 200, schema: envelope({ type: 'object', required: ['keys'], properties: { keys: { ...strings, minItems: 1 } } }) },
  // POST :mount/data/:path (KV v2)
  kv2Write: { status: 200, schema: envelope({ ...versionMetadata, required: [...versionMetadata.required, 'version'], properties: { ...versionMetadata.properties, custom_metadata: { type: ['object', 'null'] } } }) },
  // GET :mount/metadata/:path (KV v2)
  kv2Metadata: {
    status: 200,
    schema: envelope({
      type: 'object',
      required: ['cas_required', 'created_time', 'current_version', 'max_versions', 'oldest_version', 'updated_time', 'versions'],
      properties: {
        cas_required: boolean,
        created_time: string,
        updated_time: string,
        current_version: count,
        oldest_version: count,
        max_versions: count,
        delete_version_after: string,
        custom_metadata: { type: ['object', 'null'], additionalProperties: string },
        versions: { type: 'object', patternProperties: { '^[1-9][0-9]*$': versionMetadata }, additionalProperties: false },
      },
    }),
  },
} satisfies Record<string, ResponseShape>;
