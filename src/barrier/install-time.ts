/** RFC 3339 with nanoseconds, as Vault reports key install times (Date only has milliseconds; hrtime fills the rest). */
export function installTimeNow(now: Date = new Date()): string {
  const sub = (process.hrtime.bigint() % 1_000_000n).toString().padStart(6, '0');
  return now.toISOString().replace(/\.(\d{3})Z$/, `.$1${sub}Z`);
}
