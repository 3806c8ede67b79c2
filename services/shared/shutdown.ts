import type { Logger } from './log.ts'

/**
 * Runs `stop` once on the first SIGINT or SIGTERM, then exits 0 (or 1 if stopping failed).
 * A second signal while stopping is ignored: the ordered stop must finish to lose nothing.
 */
export function stopOnSignals(stop: () => Promise<void>, logger: Logger): void {
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return
      stopping = true
      logger.info('stopping', { signal })
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error('unclean stop', { error: err })
          process.exit(1)
        },
      )
    })
  }
}
