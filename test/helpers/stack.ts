import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { logLevel, type Kafka } from 'kafkajs'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger, type Logger } from '../../services/shared/log.ts'

/** Shared pieces for integration tests against the real embedded stack (started by run-tests.ts). */
export const testLogger: Logger = createLogger(process.env.LEDGER_LOG_LEVEL === 'debug' ? 'debug' : 'error')

export function brokers(): string[] {
  const list = process.env.LEDGER_KAFKA_BROKERS
  if (!list) throw new Error('LEDGER_KAFKA_BROKERS is not set: run integration tests through `npm test`')
  return list.split(',')
}

export function testKafka(clientId = 'ledger-test'): Kafka {
  return createKafka({ brokers: brokers(), clientId, logger: testLogger, level: process.env.LEDGER_LOG_LEVEL === "debug" ? logLevel.INFO : logLevel.NOTHING })
}

/** A unique name per test, so tests never see each other's records or groups. */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

export function scratchDir(name: string): string {
  const base = process.env.LEDGER_TEST_SCRATCH ?? os.tmpdir()
  return mkdtempSync(path.join(base, `${name}-`))
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what: string | (() => string | Promise<string>) = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v as T
    } catch (err) {
      last = err
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? await what() : what}${last ? `: ${(last as Error).message}` : ''}`)
}
