// Typed failures the core reports; the HTTP layer maps each kind to Vault's status code.

/** The request is wrong (400): the message tells the caller what to change. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

/** The caller may not do this (403). */
export class PermissionDeniedError extends Error {
  override readonly name = 'PermissionDeniedError';
  constructor(detail?: string) {
    super(detail ? `permission denied: ${detail}` : 'permission denied');
  }
}

/** Nothing at this path (404). `errors` is empty for a missing secret, as Vault answers. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

/** The service is not initialized yet (400 on most endpoints, as Vault answers). */
export class NotInitializedError extends Error {
  override readonly name = 'NotInitializedError';
  constructor() {
    super('Vault is not initialized');
  }
}
