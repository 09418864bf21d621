/** The barrier has no keys: the service is sealed. Vault clients match on "Vault is sealed". */
export class SealedError extends Error {
  override readonly name = 'SealedError';
  constructor() {
    super('Vault is sealed');
  }
}

export class UnknownTermError extends Error {
  override readonly name = 'UnknownTermError';
  constructor(readonly term: number) {
    super(`no decryption key available for term ${term}`);
  }
}
