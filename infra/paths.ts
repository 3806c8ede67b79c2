import { fileURLToPath } from 'node:url'
import path from 'node:path'

/** The repository root, whichever directory a command was started from. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** Git-ignored cache for fetched artifacts (the Kafka broker's jars). */
export const CACHE_DIR = path.join(REPO_ROOT, '.cache')

export function resolveDataDir(dataDir: string): string {
  return path.isAbsolute(dataDir) ? dataDir : path.join(REPO_ROOT, dataDir)
}
