import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { inflateSync } from 'node:zlib'

/**
 * Headless Chromium (Debian's `chromium` package) for checking what the HTML report shows. When it is
 * missing and we run as root, it is installed with apt-get, with apt's progress on the console; otherwise
 * the test fails with the command to run. `.ci/run` installs it up front.
 */
export const CHROMIUM = process.env.LEDGER_CHROMIUM ?? '/usr/bin/chromium'

export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM
  if (process.getuid?.() !== 0) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}. Install Debian's package: sudo apt-get update && sudo apt-get install -y chromium (or set LEDGER_CHROMIUM to a Chromium binary)`)
  }
  console.log('# installing Debian\'s chromium package for the HTML report check (apt-get install -y chromium) ...')
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status
  if (apt(['install', '-y', '--no-install-recommends', 'chromium']) !== 0) {
    if (apt(['update']) !== 0 || apt(['install', '-y', '--no-install-recommends', 'chromium']) !== 0) throw new Error('apt-get install chromium failed; install it by hand: apt-get update && apt-get install -y chromium')
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium, but ${CHROMIUM} does not exist`)
  return CHROMIUM
}

function run(args: string[]): string {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'))
  try {
    return execFileSync(
      ensureChromium(),
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, ...args],
      { encoding: 'utf8', timeout: 60_000, maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] },
    )
  } finally {
    rmSync(profile, { recursive: true, force: true })
  }
}

/** Renders a file and saves a PNG screenshot of the window (width × height). */
export function screenshot(file: string, png: string, width = 1280, height = 1600): void {
  run([`--window-size=${width},${height}`, '--hide-scrollbars', `--screenshot=${png}`, `file://${file}`])
  if (!existsSync(png)) throw new Error(`chromium wrote no screenshot to ${png}`)
}

/** The DOM after Chromium laid the page out and ran its scripts. */
export function dumpDom(file: string, width = 1280, height = 1600): string {
  return run([`--window-size=${width},${height}`, '--virtual-time-budget=5000', '--dump-dom', `file://${file}`])
}

/** A decoded PNG (8-bit RGB or RGBA, as Chromium writes them). */
export interface Png {
  width: number
  height: number
  pixel(x: number, y: number): [number, number, number]
}

export function readPng(file: string): Png {
  const buf = readFileSync(file)
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error(`${file} is not a PNG`)
  let pos = 8
  let width = 0
  let height = 0
  let channels = 0
  const idat: Buffer[] = []
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos)
    const type = buf.toString('ascii', pos + 4, pos + 8)
    const data = buf.subarray(pos + 8, pos + 8 + len)
    if (type === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      const colorType = data[9]
      if (data[8] !== 8 || (colorType !== 2 && colorType !== 6) || data[12] !== 0) throw new Error('only 8-bit non-interlaced RGB/RGBA PNGs are read here')
      channels = colorType === 6 ? 4 : 3
    } else if (type === 'IDAT') idat.push(data)
    pos += 12 + len
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const out = Buffer.alloc(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[y * stride + x - channels]! : 0
      const b = y > 0 ? out[(y - 1) * stride + x]! : 0
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels]! : 0
      let v = line[x]!
      if (filter === 1) v += a
      else if (filter === 2) v += b
      else if (filter === 3) v += (a + b) >> 1
      else if (filter === 4) {
        const p = a + b - c
        const pa = Math.abs(p - a)
        const pb = Math.abs(p - b)
        const pc = Math.abs(p - c)
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c
      }
      out[y * stride + x] = v & 0xff
    }
  }
  return { width, height, pixel: (x, y) => [out[y * stride + x * channels]!, out[y * stride + x * channels + 1]!, out[y * stride + x * channels + 2]!] }
}
