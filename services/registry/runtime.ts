import type { FastifyInstance } from 'fastify'
import type { Kafka } from 'kafkajs'
import type { Logger } from '../shared/log.ts'
import { buildRegistryApp } from './app.ts'
import { createKafkaRegistryLog, type KafkaRegistryLog } from './kafka-log.ts'
import { RegistryService } from './registry-service.ts'
import { RegistryState } from './registry-state.ts'

export interface RegistryRuntime {
  app: FastifyInstance
  service: RegistryService
  log: KafkaRegistryLog
  /** Listens and resolves with the base URL. */
  listen(host: string, port: number): Promise<string>
  /** Stops answering, then stops reading the log. */
  stop(): Promise<void>
}

/** Wires state, log and HTTP app; loads the whole compacted topic before it answers. */
export async function createRegistryRuntime(options: { kafka: Kafka; topic: string; logger: Logger }): Promise<RegistryRuntime> {
  const state = new RegistryState()
  const log = createKafkaRegistryLog({ kafka: options.kafka, topic: options.topic, state, logger: options.logger })
  await log.start()
  const service = new RegistryService(state, log)
  const app = buildRegistryApp({ service })
  return {
    app,
    service,
    log,
    async listen(host, port) {
      const address = await app.listen({ host, port })
      return address.replace('://[::1]', '://localhost')
    },
    async stop() {
      await app.close()
      await log.stop()
    },
  }
}
