import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { KeyRequestError } from '../../pkcs11/key-types.js';
import type { LogicalResponse } from '../engine.js';

/** More items than any client batches (Vault sets no limit; 1 MiB of body holds about 20,000 small ones). */
const MAX_BATCH_ITEMS = 20_000;
/**
 * Items of one batch in flight at once: on a network HSM each waits for its round trips on the
 * session pool, so a batch keeps every pool thread busy (two lanes each, max_parallel up to 32)
 * rather than waiting for one item at a time. On an in-process token each item finishes at once.
 */
const ITEMS_IN_FLIGHT = 64;

type Item = Record<string, unknown>;

/**
 * Vault's batch_input: each item handled on its own and answered in order in batch_results (with
 * its `reference`), a bad item answered with its `error` while the others go on. Any failed item
 * makes the status 400 (or `partial_failure_response_code` when some succeeded). Without
 * batch_input the body itself is the one item, and its error is the request's.
 */
export async function perItem(body: Item, run: (item: Item) => Item | Promise<Item>): Promise<LogicalResponse> {
  const batch = body.batch_input;
  if (batch === undefined || batch === null) return { data: await run(body) };
  if (!Array.isArray(batch)) throw new InvalidRequestError('batch_input must be a list of objects');
  if (batch.length === 0) throw new InvalidRequestError('batch_input is empty');
  if (batch.length > MAX_BATCH_ITEMS) throw new InvalidRequestError(`batch_input has ${batch.length} items; at most ${MAX_BATCH_ITEMS}`);
  const results: Item[] = new Array(batch.length);
  let failed = 0;
  let next = 0;
  let fault: unknown;
  const itemError = (err: unknown, reference: string | undefined): Item => {
    // A fault of the server or the token fails the whole request (503/500), not one item.
    if (!isItemError(err)) throw err;
    failed++;
    return withReference({ error: (err as Error).message }, reference);
  };
  // An item's answer, without a promise when it was made without waiting (an in-process token).
  const answer = (raw: unknown): Item | Promise<Item> => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      failed++;
      return { error: 'each batch_input item must be an object' };
    }
    const item = raw as Item;
    const reference = typeof item.reference === 'string' ? item.reference : undefined;
    let result: Item | Promise<Item>;
    try {
      result = run(item);
    } catch (err) {
      return itemError(err, reference);
    }
    if (!(result instanceof Promise)) return withReference(result, reference);
    return result.then(
      (r) => withReference(r, reference),
      (err: unknown) => itemError(err, reference),
    );
  };
  // A few runners take the items in order; after a fault none takes another.
  const runner = async () => {
    while (next < batch.length && fault === undefined) {
      const i = next++;
      try {
        const result = answer(batch[i]);
        results[i] = result instanceof Promise ? await result : result;
      } catch (err) {
        fault ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(ITEMS_IN_FLIGHT, batch.length) }, runner));
  if (fault !== undefined) throw fault;
  const partial = Number(body.partial_failure_response_code);
  const status = failed === 0 ? 200 : failed < batch.length && Number.isInteger(partial) && partial >= 200 && partial < 600 ? partial : 400;
  return { status, data: { batch_results: results } };
}

function withReference(item: Item, reference: string | undefined): Item {
  if (reference !== undefined) item.reference = reference;
  return item;
}

function isItemError(err: unknown): boolean {
  return err instanceof InvalidRequestError || err instanceof NotFoundError || err instanceof KeyRequestError;
}
