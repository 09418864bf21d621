/**
 * Per-client token buckets for the unauthenticated quorum endpoints (sys/unseal,
 * sys/rekey/update, sys/generate-root/update). Generous on purpose: an operator typing shares
 * never comes close, while a client hammering the HSM with guesses is slowed to the refill rate.
 * Nothing locks out: a bucket refills whatever happened before.
 */
export class ClientRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity = 100,
    private readonly refillPerSecond = 20,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request from the client's bucket; returns the seconds to wait when empty, else 0. */
  take(client: string): number {
    const t = this.now();
    const b = this.buckets.get(client) ?? { tokens: this.capacity, at: t };
    b.tokens = Math.min(this.capacity, b.tokens + ((t - b.at) / 1000) * this.refillPerSecond);
    b.at = t;
    if (this.buckets.size > 10_000) this.evictFull(t);
    if (b.tokens < 1) {
      this.buckets.set(client, b);
      return Math.ceil((1 - b.tokens) / this.refillPerSecond);
    }
    b.tokens -= 1;
    this.buckets.set(client, b);
    return 0;
  }

  /** Forgets clients whose bucket has refilled, so the map stays small. */
  private evictFull(t: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.refillPerSecond >= this.capacity) this.buckets.delete(k);
    }
  }
}
