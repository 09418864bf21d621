/** Vault's response wrapper around `data` for logical reads and most sys reads. */
export function envelope(requestId: string, data: unknown, leaseDuration = 0): Record<string, unknown> {
  return {
    request_id: requestId,
    lease_id: '',
    renewable: false,
    lease_duration: leaseDuration,
    data,
    wrap_info: null,
    warnings: null,
    auth: null,
  };
}

/** Vault answers several sys reads with the fields both at the top level and under `data`. */
export function sysReply(requestId: string, data: Record<string, unknown>): Record<string, unknown> {
  return { ...data, ...envelope(requestId, data) };
}
