import type { BarrierView } from '../barrier/view.js';
import { NotFoundError } from '../core/errors.js';
import type { AuthResponse } from './method.js';

/**
 * The named entries an auth method keeps under its view, one per `<collection>/<name>`
 * (approle's role/<name>, userpass's users/<name>, cert's certs/<name>, jwt's role/<name>).
 * A name the method's `pattern` refuses is never written, so it is never looked up either.
 */

/** The <name> a `<collection>/<name>` path addresses ("role/web" → "web"); undefined for any other path. */
export function entryName(path: string, collection: string): string | undefined {
  const prefix = `${collection}/`;
  if (!path.startsWith(prefix)) return undefined;
  const name = path.slice(prefix.length);
  return name !== '' && !name.includes('/') ? name : undefined;
}

/** The entry stored at `<collection>/<name>`, or undefined when there is none. */
export async function readEntry<T>(view: BarrierView, collection: string, name: string, pattern: RegExp): Promise<T | undefined> {
  return pattern.test(name) ? view.getJson<T>(`${collection}/${name}`) : undefined;
}

/** Whether an entry is stored at `<collection>/<name>`. */
export async function entryExists(view: BarrierView, collection: string, name: string, pattern: RegExp): Promise<boolean> {
  return pattern.test(name) && (await view.exists(`${collection}/${name}`));
}

/** Vault's answer to a LIST of the collection: the names stored in it, or a 404 when there are none. */
export async function listEntryNames(view: BarrierView, collection: string): Promise<AuthResponse> {
  const keys = (await view.list(`${collection}/`)).filter((k) => !k.endsWith('/'));
  if (keys.length === 0) throw new NotFoundError('');
  return { data: { keys } };
}
