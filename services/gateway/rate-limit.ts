/**
 * Per-tenant token buckets. `take()` answers how many seconds to wait when the bucket is empty,
 * which becomes the 429's retry-after.
 */
export class TenantRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>()

  constructor(
    private readonly rateFor: (tenant: string) => number,
    private readonly burstSeconds = 2,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token; returns 0 when allowed, else the seconds until one is available. */
  take(tenant: string): number {
    const rate = this.rateFor(tenant)
    const capacity = Math.max(1, rate * this.burstSeconds)
    const t = this.now()
    const bucket = this.buckets.get(tenant) ?? { tokens: capacity, updated: t }
    bucket.tokens = Math.min(capacity, bucket.tokens + ((t - bucket.updated) / 1000) * rate)
    bucket.updated = t
    this.buckets.set(tenant, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / rate))
  }
}
