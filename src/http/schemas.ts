/** JSON schemas more than one route validates against. */

/** One key share and the nonce of the operation it is for (rekey update and verify, generate-root update). */
export const shareBody = {
  type: 'object',
  properties: { key: { type: 'string' }, nonce: { type: 'string' } },
  required: ['key', 'nonce'],
} as const;
