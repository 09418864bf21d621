import { SealedError, UnknownTermError } from '../barrier/errors.js';
import { AuditFailedError } from '../core/audit.js';
import { InvalidRequestError, NotFoundError, NotInitializedError, PermissionDeniedError } from '../core/errors.js';
import { ShamirError } from '../crypto/shamir.js';
import { IntegrityError, TokenError, TokenUnavailableError } from '../pkcs11/errors.js';
import { KeyRequestError } from '../pkcs11/key-types.js';
import { NotActiveError, StorageKeyError, StorageUnavailableError } from '../storage/backend.js';

/** An error raised by the HTTP layer itself, with the status to answer. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorReply {
  status: number;
  errors: string[];
  /** Server-side failures are logged; client mistakes are not. */
  serverFault: boolean;
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  validation?: Array<{ instancePath?: string; message?: string; params?: Record<string, unknown> }>;
  validationContext?: string;
}

/**
 * Maps any thrown error to Vault's status code and `{"errors": [...]}` body. Errors about stored
 * entries name `requestPath` (the path under /v1/ the client asked for), never the storage path
 * with its mount UUID; the server log keeps the details.
 */
export function toErrorReply(err: unknown, requestPath = ''): ErrorReply {
  const e = err as Error & FastifyLikeError;
  const client = (status: number, message?: string): ErrorReply => ({ status, errors: message ? [message] : [], serverFault: false });
  if (e instanceof HttpError) return client(e.status, e.message);
  if (e instanceof StorageKeyError) return client(400, `cannot store "${requestPath}": its storage path ${e.problem}`);
  if (e instanceof InvalidRequestError || e instanceof NotInitializedError || e instanceof ShamirError) {
    return client(400, e.message);
  }
  // A request a key or the token cannot serve as asked (a managed key that is missing, an input the key cannot take).
  if (e instanceof KeyRequestError) return client(400, e.message);
  if (e instanceof PermissionDeniedError) return client(403, e.message);
  if (e instanceof NotFoundError) return client(404, e.message || undefined);
  if (e instanceof SealedError) return client(503, e.message);
  if (e instanceof NotActiveError) return client(503, `${e.message}; retry`);
  if (e instanceof TokenUnavailableError || e instanceof StorageUnavailableError) return { status: 503, errors: [e.message], serverFault: true };
  if (e instanceof IntegrityError) return { status: 500, errors: [`the data stored for "${requestPath}" failed its integrity check; see the server log`], serverFault: true };
  if (e instanceof UnknownTermError || e instanceof AuditFailedError) return { status: 500, errors: [e.message], serverFault: true };
  if (e instanceof TokenError) return { status: 500, errors: [e.message], serverFault: true };
  if (e.validation) return client(400, validationMessage(e));
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return client(413, 'request body is larger than the 1 MiB limit');
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return client(415, e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return client(e.statusCode, e.message);
  return { status: 500, errors: ['internal error; see the server log'], serverFault: true };
}

function validationMessage(e: FastifyLikeError): string {
  const first = e.validation![0]!;
  const where = e.validationContext === 'querystring' ? 'query parameter' : 'field';
  const missing = first.params?.missingProperty;
  if (typeof missing === 'string') return `missing required ${where} "${missing}"`;
  const name = (first.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
  if (!name) return `request body ${first.message ?? 'is invalid'} (send a JSON object)`;
  return `${where} "${name}" ${first.message ?? 'is invalid'}`;
}
