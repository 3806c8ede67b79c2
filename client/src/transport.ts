import { LedgerBufferFullError, LedgerClientError, LedgerFlushTimeoutError, LedgerRejectedError } from './errors.ts'

export interface TransportOptions {
  endpoint: string
  apiKey: string
  batchSize: number
  flushIntervalMs: number
  maxBufferedEvents: number
  requestTimeoutMs: number
  maxRetryDelayMs: number
  strict: boolean
  onError: (err: LedgerClientError) => void
  onResponse?: (body: unknown) => void
  fetch: typeof fetch
}

export interface TransportStats {
  /** Events handed to the client. */
  emitted: number
  /** Events the gateway acknowledged (stored in Kafka). */
  acknowledged: number
  /** Acknowledged events the gateway had already stored (a retry after a lost response). */
  duplicates: number
  /** Events refused because the buffer was full. */
  dropped: number
  /** Events the gateway refused for good (invalid, forbidden). */
  rejected: number
  /** Requests retried after a 5xx, 429 or network error. */
  retries: number
  /** Events waiting to be sent. */
  buffered: number
}

type QueuedEvent = Record<string, unknown> & { event_id: string }

/**
 * Batches events and posts them in order, one request at a time (so a run's events reach Kafka in
 * step order). 5xx, 429 and network errors are retried with backoff and the same event ids, so a
 * retry of something already stored is acknowledged as a duplicate rather than written twice.
 */
export class Transport {
  readonly stats: TransportStats = { emitted: 0, acknowledged: 0, duplicates: 0, dropped: 0, rejected: 0, retries: 0, buffered: 0 }
  private queue: QueuedEvent[] = []
  private sending: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  /** Consecutive failed sends; the next delay doubles with each. */
  private failures = 0
  private backingOff = false
  private closed = false
  /** Reservation ids to release with the next request. */
  private releases: string[] = []

  constructor(private readonly options: TransportOptions) {
    this.timer = setInterval(() => this.kick(), options.flushIntervalMs)
    this.timer.unref()
  }

  /** Queues an event; never blocks. Returns false (and reports) when the buffer is full. */
  enqueue(event: QueuedEvent): boolean {
    this.stats.emitted += 1
    if (this.closed) {
      this.stats.dropped += 1
      this.report(new LedgerClientError('the client is closed; the event was dropped', 'LEDGER_CLIENT_CLOSED'))
      return false
    }
    if (this.queue.length >= this.options.maxBufferedEvents) {
      this.stats.dropped += 1
      this.report(new LedgerBufferFullError(this.options.maxBufferedEvents))
      return false
    }
    this.queue.push(event)
    this.stats.buffered = this.queue.length
    if (this.queue.length >= this.options.batchSize) this.kick()
    return true
  }

  private report(err: LedgerClientError): void {
    try {
      this.options.onError(err)
    } catch {
      // The agent's error callback must not break emitting.
    }
    if (this.options.strict && err instanceof LedgerBufferFullError) throw err
  }

  private kick(): void {
    if (this.sending !== undefined || this.queue.length === 0 || this.backingOff) return
    this.sending = this.sendOne().finally(() => {
      this.sending = undefined
      if (this.queue.length >= this.options.batchSize) this.kick()
    })
  }

  /**
   * Releases a guard reservation with the next request, which carries the event with the real
   * cost: the gateway swaps the estimate for the real cost in one step, never counting neither.
   */
  release(reservationId: string): void {
    this.releases.push(reservationId)
  }

  private async sendOne(): Promise<void> {
    const batch = this.queue.slice(0, this.options.batchSize)
    const releases = this.releases.slice(0, 1_000)
    let res: Response
    try {
      res = await this.options.fetch(`${this.options.endpoint}/v1/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.options.apiKey}`,
          ...traceparentOf(batch[0]),
          ...(releases.length > 0 ? { 'x-ledger-release': releases.join(',') } : {}),
        },
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs),
      })
    } catch (err) {
      return this.retryLater(new LedgerClientError(`network error posting ${batch.length} events: ${(err as Error).message}`, 'LEDGER_CLIENT_NETWORK', { cause: err }))
    }
    const body = (await res.json().catch(() => ({}))) as { duplicates?: number; error?: { code?: string; message?: string; problems?: { index: number }[] } }
    if (res.status === 202) {
      this.failures = 0
      this.releases.splice(0, releases.length)
      this.queue.splice(0, batch.length)
      this.stats.acknowledged += batch.length
      this.stats.duplicates += body.duplicates ?? 0
      this.stats.buffered = this.queue.length
      this.options.onResponse?.(body)
      return
    }
    if (res.status >= 500 || res.status === 429) {
      const retryAfter = Number(res.headers.get('retry-after'))
      return this.retryLater(new LedgerClientError(`gateway answered ${res.status}: ${body.error?.message ?? ''}`, 'LEDGER_CLIENT_RETRYING'), Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined)
    }
    if (res.status === 413 && batch.length > 1) {
      // Too large as one request: halve the batch size for this send and go again.
      this.options.batchSize = Math.max(1, Math.floor(batch.length / 2))
      return
    }
    const problems = body.error?.problems
    const badIndexes = new Set((problems ?? []).map((p) => p.index).filter((i) => Number.isInteger(i) && i >= 0 && i < batch.length))
    // With per-event problems only those events are refused and the rest go again; otherwise the whole batch is.
    const refused = (res.status === 400 || res.status === 409) && badIndexes.size > 0 ? batch.filter((_, i) => badIndexes.has(i)) : batch
    const refusedIds = new Set(refused.map((e) => e.event_id))
    this.queue = this.queue.filter((e) => !refusedIds.has(e.event_id))
    this.stats.rejected += refused.length
    this.stats.buffered = this.queue.length
    this.report(new LedgerRejectedError(`gateway refused ${refused.length} events (${res.status} ${body.error?.code ?? ''}): ${body.error?.message ?? ''}`, res.status, body.error?.code, [...refusedIds]))
  }

  private retryLater(err: LedgerClientError, delayMs?: number): void {
    this.stats.retries += 1
    this.failures += 1
    this.report(err)
    const backoff = Math.min(this.options.maxRetryDelayMs, 100 * 2 ** Math.min(this.failures - 1, 16))
    const delay = delayMs ?? backoff / 2 + Math.random() * (backoff / 2)
    this.backingOff = true
    setTimeout(() => {
      this.backingOff = false
      this.kick()
    }, delay).unref()
  }

  /** Sends everything queued. Resolves when the queue is empty or `timeoutMs` passed. */
  async flush(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.queue.length > 0 || this.sending !== undefined) {
      if (Date.now() > deadline) {
        if (this.options.strict) throw new LedgerFlushTimeoutError(this.queue.length)
        this.report(new LedgerFlushTimeoutError(this.queue.length))
        return
      }
      this.kick()
      if (this.sending !== undefined) await this.sending
      else await new Promise((r) => setTimeout(r, 20))
    }
  }

  async close(timeoutMs = 30_000): Promise<void> {
    try {
      await this.flush(timeoutMs)
    } finally {
      this.closed = true
      if (this.timer) clearInterval(this.timer)
    }
  }
}

function traceparentOf(event: QueuedEvent | undefined): Record<string, string> {
  const trace = event?.trace_id
  const span = event?.span_id
  return typeof trace === 'string' && typeof span === 'string' ? { traceparent: `00-${trace}-${span}-01` } : {}
}
