import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { LedgerError } from '../../services/shared/errors.ts'
import { CACHE_DIR, REPO_ROOT } from '../paths.ts'

/**
 * The pinned Apache Kafka release. 3.9.1 is the newest line whose broker still serves every
 * protocol version kafkajs 2.2.4 speaks: Kafka 4.0 removed old request versions (KIP-896), and
 * kafkajs' consumer-group and offset requests are among them. The README records this choice.
 */
export const KAFKA_VERSION = '3.9.1'
const POM = path.join(REPO_ROOT, 'infra', 'kafka', 'pom.xml')

export function kafkaLibsDir(version = KAFKA_VERSION): string {
  return path.join(CACHE_DIR, 'kafka', version, 'libs')
}

/**
 * Fetches the broker's jars once with Maven into the git-ignored cache and returns the directory.
 * A completed fetch leaves a marker file, so an interrupted one is redone rather than trusted.
 */
export async function fetchKafka(progress: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<string> {
  const libs = kafkaLibsDir()
  const marker = path.join(libs, '.complete')
  if (existsSync(marker)) return libs
  const staging = `${libs}.partial`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  progress(`[kafka] fetching Apache Kafka ${KAFKA_VERSION} broker jars with Maven (first run only) ...`)
  const started = Date.now()
  let fetched = 0
  await new Promise<void>((resolve, reject) => {
    const mvn = spawn(
      'mvn',
      ['-B', '-f', POM, 'dependency:copy-dependencies', `-Dkafka.version=${KAFKA_VERSION}`, `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const tail: string[] = []
    const onLine = (line: string): void => {
      tail.push(line)
      if (tail.length > 40) tail.shift()
      // Maven prints one "Downloaded from <repo>: <url> (<size>)" line per artifact; show the file only.
      const m = /Downloaded from [^:]+: \S+\/([^/\s]+\.(?:jar|pom)) \(([^)]+)\)/.exec(line)
      if (m) {
        fetched += 1
        if (m[1]!.endsWith('.jar')) progress(`[kafka]   fetched ${m[1]} (${m[2]}) [${fetched} files]`)
      }
    }
    let buffered = ''
    const feed = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8')
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const l of lines) onLine(l)
    }
    mvn.stdout.on('data', feed)
    mvn.stderr.on('data', feed)
    mvn.on('error', (err) =>
      reject(new LedgerError('LEDGER_ERR_BROKER_FETCH', `could not run mvn (is Maven installed?): ${err.message}`, { cause: err })),
    )
    mvn.on('close', (code) => {
      if (code === 0) resolve()
      else reject(new LedgerError('LEDGER_ERR_BROKER_FETCH', `mvn exited with ${code}:\n${tail.join('\n')}`))
    })
  })
  const jars = readdirSync(staging).filter((f) => f.endsWith('.jar'))
  if (!jars.some((j) => j.startsWith('kafka_2.13-'))) {
    throw new LedgerError('LEDGER_ERR_BROKER_FETCH', `Maven finished but no kafka_2.13 jar is in ${staging}`)
  }
  writeFileSync(path.join(staging, '.complete'), `${KAFKA_VERSION}\n${jars.length} jars\n`)
  rmSync(libs, { recursive: true, force: true })
  mkdirSync(path.dirname(libs), { recursive: true })
  renameSync(staging, libs)
  progress(`[kafka] ${jars.length} jars ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return libs
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  fetchKafka().then(
    (dir) => console.log(`[kafka] broker jars in ${dir}`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err)
      process.exit(1)
    },
  )
}
