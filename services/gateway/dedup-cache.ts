/**
 * Remembers the content digest of event ids Kafka acknowledged, so a client's retry of an event
 * is acknowledged without being written again, and a different event reusing an id is refused.
 * Bounded (least recently acknowledged entries go first); a gateway restart forgets it, and then
 * the lineage store's deduplication on event id keeps one copy.
 */
export class DedupCache {
  private readonly entries = new Map<string, string>()

  constructor(private readonly capacity: number) {}

  get(tenant: string, eventId: string): string | undefined {
    return this.entries.get(`${tenant}\u0000${eventId}`)
  }

  remember(tenant: string, eventId: string, digest: string): void {
    const key = `${tenant}\u0000${eventId}`
    this.entries.delete(key)
    this.entries.set(key, digest)
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
