import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createEmbeddedKafka, type EmbeddedKafka } from '../../infra/kafka/broker.ts'
import { createLogger } from '../../services/shared/log.ts'
import { freePort } from '../../infra/ports.ts'

export { freePort }

/** Benchmarks use LEDGER_KAFKA_BROKERS when set, else a fresh embedded broker of their own. */
export async function benchBrokers(): Promise<{ brokers: string[]; stop: () => Promise<void> }> {
  if (process.env.LEDGER_KAFKA_BROKERS) return { brokers: process.env.LEDGER_KAFKA_BROKERS.split(','), stop: async () => undefined }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-bench-'))
  const broker: EmbeddedKafka = createEmbeddedKafka({
    dataDir: path.join(dir, 'kafka'),
    port: await freePort(),
    controllerPort: await freePort(),
    heap: '1g',
    logger: createLogger('warn'),
  })
  await broker.start()
  return {
    brokers: broker.brokers,
    stop: async () => {
      await broker.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}


export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

export function printTable(title: string, rows: Record<string, string | number>[]): void {
  console.log(`\n${title}`)
  if (rows.length === 0) return
  const cols = Object.keys(rows[0]!)
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)))
  console.log(cols.map((c, i) => c.padEnd(width[i]!)).join('  '))
  for (const r of rows) console.log(cols.map((c, i) => String(r[c]).padEnd(width[i]!)).join('  '))
}
