import secureJson from 'secure-json-parse';
import { HttpError } from './errors.js';

/** Vault's default `max_json_depth`: deeper bodies would overflow the stack of whatever walks them next (serializers, the audit hasher). */
export const MAX_JSON_DEPTH = 300;

/** A request body as JSON: `undefined` when blank, HttpError 400 when malformed, poisoned or nested too deep. */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    // secure-json-parse refuses __proto__ and constructor.prototype keys (prototype poisoning).
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    throw new HttpError(400, `failed to parse JSON input: ${(err as Error).message}`);
  }
  if (depthExceeds(value, MAX_JSON_DEPTH)) throw new HttpError(400, `JSON input is nested more than ${MAX_JSON_DEPTH} levels deep`);
  return value;
}

/** A logical request's body as its fields: none for an absent body, 400 for anything but a JSON object. */
export function requestFields(body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Whether `value` nests objects or arrays deeper than `max`, walked without recursion. */
function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
