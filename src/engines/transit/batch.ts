import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { KeyRequestError } from '../../pkcs11/key-types.js';
import type { LogicalResponse } from '../engine.js';

/** More items than any client batches (Vault sets no limit; 1 MiB of body holds about 20,000 small ones). */
const MAX_BATCH_ITEMS = 20_000;

type Item = Record<string, unknown>;

/**
 * Vault's batch_input: each item handled on its own and answered in order in batch_results (with
 * its `reference`), a bad item answered with its `error` while the others go on. Any failed item
 * makes the status 400 (or `partial_failure_response_code` when some succeeded). Without
 * batch_input the body itself is the one item, and its error is the request's.
 */
export async function perItem(body: Item, run: (item: Item) => Promise<Item>): Promise<LogicalResponse> {
  const batch = body.batch_input;
  if (batch === undefined || batch === null) return { data: await run(body) };
  if (!Array.isArray(batch)) throw new InvalidRequestError('batch_input must be a list of objects');
  if (batch.length === 0) throw new InvalidRequestError('batch_input is empty');
  if (batch.length > MAX_BATCH_ITEMS) throw new InvalidRequestError(`batch_input has ${batch.length} items; at most ${MAX_BATCH_ITEMS}`);
  const results: Item[] = [];
  let failed = 0;
  for (const raw of batch) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      failed++;
      results.push({ error: 'each batch_input item must be an object' });
      continue;
    }
    const item = raw as Item;
    const reference = typeof item.reference === 'string' ? item.reference : undefined;
    try {
      results.push({ ...(await run(item)), ...(reference === undefined ? {} : { reference }) });
    } catch (err) {
      // A fault of the server or the token fails the whole request (503/500), not one item.
      if (!isItemError(err)) throw err;
      failed++;
      results.push({ error: (err as Error).message, ...(reference === undefined ? {} : { reference }) });
    }
  }
  const partial = Number(body.partial_failure_response_code);
  const status = failed === 0 ? 200 : failed < batch.length && Number.isInteger(partial) && partial >= 200 && partial < 600 ? partial : 400;
  return { status, data: { batch_results: results } };
}

function isItemError(err: unknown): boolean {
  return err instanceof InvalidRequestError || err instanceof NotFoundError || err instanceof KeyRequestError;
}
