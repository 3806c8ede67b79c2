import { randomBytes } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
let lastTime = -1
let lastRandom: number[] = []

/**
 * A monotonic ULID: 48-bit millisecond time then 80 random bits, Crockford base32. Within one
 * millisecond the random part is incremented, so ids from one process sort in emit order.
 */
export function ulid(now: number = Date.now()): string {
  if (now <= lastTime) {
    // Same (or earlier, if the clock stepped back) millisecond: increment the random part.
    now = lastTime
    let i = lastRandom.length - 1
    while (i >= 0 && lastRandom[i] === 31) lastRandom[i--] = 0
    if (i >= 0) lastRandom[i]! += 1
  } else {
    lastTime = now
    const bytes = randomBytes(16)
    lastRandom = Array.from({ length: 16 }, (_, j) => bytes[j]! & 31)
  }
  let time = ''
  let t = now
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time
    t = Math.floor(t / 32)
  }
  return time + lastRandom.map((d) => ALPHABET[d]).join('')
}
