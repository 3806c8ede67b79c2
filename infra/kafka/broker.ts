import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Kafka, logLevel } from 'kafkajs'
import { LedgerError } from '../../services/shared/errors.ts'
import type { Logger } from '../../services/shared/log.ts'
import { portOpen } from '../ports.ts'
import { fetchKafka } from './fetch.ts'

export interface EmbeddedKafkaOptions {
  /** Directory for KRaft metadata, logs and the broker's own log file. */
  dataDir: string
  port: number
  controllerPort: number
  /** JVM heap, e.g. `768m`. */
  heap: string
  logger: Logger
  /** Milliseconds to wait for the broker to answer a metadata request. */
  startTimeoutMs?: number
}

export interface EmbeddedKafka {
  readonly brokers: string[]
  readonly pid: number | undefined
  start(): Promise<void>
  /** SIGTERM, wait for a clean controlled shutdown, SIGKILL only after the timeout. */
  stop(timeoutMs?: number): Promise<void>
}

/**
 * A real single-node Apache Kafka (broker + KRaft controller) on loopback, started from the
 * jars `fetchKafka()` put in the cache. One JVM per data directory: a broker left behind by a
 * process that was killed with -9 is found by its pid file and stopped before a new one starts.
 */
export function createEmbeddedKafka(options: EmbeddedKafkaOptions): EmbeddedKafka {
  const dir = path.resolve(options.dataDir)
  const logDirs = path.join(dir, 'logs')
  const propsFile = path.join(dir, 'server.properties')
  const log4jFile = path.join(dir, 'log4j.properties')
  const pidFile = path.join(dir, 'broker.pid')
  const brokerLog = path.join(dir, 'broker.log')
  const brokers = [`127.0.0.1:${options.port}`]
  const log = options.logger.child({ component: 'embedded-kafka' })
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()
  const killOnExit = (): void => {
    if (child?.pid !== undefined && child.exitCode === null) child.kill('SIGKILL')
  }

  function writeConfig(): void {
    mkdirSync(logDirs, { recursive: true })
    const props = {
      'process.roles': 'broker,controller',
      'node.id': '1',
      'controller.quorum.voters': `1@127.0.0.1:${options.controllerPort}`,
      listeners: `PLAINTEXT://127.0.0.1:${options.port},CONTROLLER://127.0.0.1:${options.controllerPort}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${options.port}`,
      'controller.listener.names': 'CONTROLLER',
      'inter.broker.listener.name': 'PLAINTEXT',
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      'log.dirs': logDirs,
      'num.partitions': '1',
      'auto.create.topics.enable': 'false',
      // A single node: internal topics cannot have more than one replica.
      'offsets.topic.replication.factor': '1',
      'offsets.topic.num.partitions': '8',
      'transaction.state.log.replication.factor': '1',
      'transaction.state.log.min.isr': '1',
      'transaction.state.log.num.partitions': '4',
      'min.insync.replicas': '1',
      // Tests and `npm start` join groups right away; the 3 s default delay only slows them down.
      'group.initial.rebalance.delay.ms': '0',
      'log.cleaner.enable': 'true',
      'num.network.threads': '3',
      'num.io.threads': '4',
      'delete.topic.enable': 'true',
    }
    writeFileSync(propsFile, Object.entries(props).map(([k, v]) => `${k}=${v}`).join('\n') + '\n')
    writeFileSync(
      log4jFile,
      [
        'log4j.rootLogger=INFO, stdout',
        'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
        'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
        'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
        'log4j.logger.kafka=INFO',
        'log4j.logger.org.apache.kafka=INFO',
        'log4j.logger.state.change.logger=WARN',
        'log4j.logger.kafka.log.LogCleaner=WARN',
        '',
      ].join('\n'),
    )
  }

  function stopStaleBroker(): void {
    if (!existsSync(pidFile)) return
    const pid = Number(readFileSync(pidFile, 'utf8').trim())
    if (!Number.isInteger(pid) || pid <= 0) return
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      if (cmdline.includes('kafka.Kafka') && cmdline.includes(propsFile)) {
        log.warn('stopping a broker left behind by an earlier run', { pid })
        process.kill(pid, 'SIGKILL')
      }
    } catch {
      // No such process: the pid file is stale.
    }
    rmSync(pidFile, { force: true })
  }

  function formatStorage(classpath: string): void {
    if (existsSync(path.join(logDirs, 'meta.properties'))) return
    const clusterId = randomBytes(16).toString('base64url')
    const result = spawnSync('java', ['-cp', classpath, `-Dlog4j.configuration=file:${log4jFile}`, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '--config', propsFile], {
      encoding: 'utf8',
    })
    if (result.status !== 0) {
      throw new LedgerError('LEDGER_ERR_BROKER_START', `formatting KRaft storage failed: ${result.stderr || result.stdout}`)
    }
    log.info('formatted KRaft storage', { clusterId, dir: logDirs })
  }

  async function waitUntilReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const kafka = new Kafka({ brokers, clientId: 'embedded-kafka-probe', logLevel: logLevel.NOTHING, retry: { retries: 0 } })
    let lastError: unknown
    while (Date.now() < deadline) {
      if (child?.exitCode !== null && child?.exitCode !== undefined) {
        throw new LedgerError('LEDGER_ERR_BROKER_START', `the broker exited with ${child.exitCode} while starting; see ${brokerLog}\n${tailOf(brokerLog)}`)
      }
      if (await portOpen(options.port)) {
        const admin = kafka.admin()
        try {
          await admin.connect()
          const cluster = await admin.describeCluster()
          if (cluster.brokers.length > 0 && cluster.controller !== null) return
        } catch (err) {
          lastError = err
        } finally {
          await admin.disconnect().catch(() => undefined)
        }
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new LedgerError('LEDGER_ERR_BROKER_START', `the broker did not answer on ${brokers[0]} within ${timeoutMs} ms; see ${brokerLog}`, { cause: lastError })
  }

  return {
    brokers,
    get pid() {
      return child?.pid
    },
    async start() {
      const libs = await fetchKafka((line) => log.info(line))
      const classpath = path.join(libs, '*')
      mkdirSync(dir, { recursive: true })
      stopStaleBroker()
      if (await portOpen(options.port)) {
        throw new LedgerError('LEDGER_ERR_BROKER_START', `port ${options.port} is already in use; set LEDGER_EMBEDDED_KAFKA_PORT or LEDGER_KAFKA_BROKERS`)
      }
      writeConfig()
      formatStorage(classpath)
      const out = openSync(brokerLog, 'a')
      const started = Date.now()
      child = spawn(
        'java',
        [
          `-Xms${options.heap}`,
          `-Xmx${options.heap}`,
          '-XX:+UseG1GC',
          '-XX:MaxGCPauseMillis=20',
          '-XX:+ExitOnOutOfMemoryError',
          '-Djava.awt.headless=true',
          `-Dlog4j.configuration=file:${log4jFile}`,
          `-Dkafka.logs.dir=${dir}`,
          '-cp',
          classpath,
          'kafka.Kafka',
          propsFile,
        ],
        { stdio: ['ignore', out, out], detached: false },
      )
      closeSync(out)
      const proc = child
      exited = new Promise((resolve) => proc.once('exit', () => resolve()))
      if (proc.pid !== undefined) writeFileSync(pidFile, String(proc.pid))
      process.once('exit', killOnExit)
      await waitUntilReady(options.startTimeoutMs ?? 60_000)
      log.info('broker ready', { brokers: brokers.join(','), pid: proc.pid, ms: Date.now() - started })
    },
    async stop(timeoutMs = 30_000) {
      const proc = child
      if (proc === undefined || proc.exitCode !== null) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => {
        log.warn('broker did not stop in time; killing it', { pid: proc.pid })
        proc.kill('SIGKILL')
      }, timeoutMs)
      await exited
      clearTimeout(timer)
      process.removeListener('exit', killOnExit)
      rmSync(pidFile, { force: true })
      child = undefined
      log.info('broker stopped')
    },
  }
}

function tailOf(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}
