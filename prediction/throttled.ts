// Decoding of the Raspberry Pi `vcgencmd get_throttled` bit mask, e.g. `0x50005` or `throttled=0x50005`.
// Bits 0–3 describe the current state, bits 16–19 the same conditions "has occurred since boot".

import type { ThrottledFlags } from '../schemas/readings.js'

// The decoded flags are the schema's (served in readings and statuses), not a second definition.
export type { ThrottledFlags }

export const THROTTLED_BITS: Readonly<Record<keyof ThrottledFlags, number>> = Object.freeze({
  under_voltage: 0,
  arm_frequency_capped: 1,
  throttled: 2,
  soft_temperature_limit: 3,
  under_voltage_occurred: 16,
  arm_frequency_capped_occurred: 17,
  throttled_occurred: 18,
  soft_temperature_limit_occurred: 19
})

/** Bits 0–3: a condition that holds right now. */
export const THROTTLED_NOW_MASK = 0xf

export class InvalidThrottledError extends Error {
  constructor (value: unknown) {
    const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : String(value)
    super(`Invalid throttled value ${shown}: expected a hex bit mask such as "0x50005" or "throttled=0x50005"`)
    this.name = 'InvalidThrottledError'
  }
}

// vcgencmd prints at most 32 bits; the `0x` prefix is required so that a decimal string cannot be misread as hex.
const THROTTLED_PATTERN = /^\s*(?:throttled\s*=\s*)?0x([0-9a-f]{1,8})\s*$/i

/**
 * The mask as a number, or null when `value` is not a valid mask.
 * Accepts the vcgencmd string (with or without the `throttled=` prefix) or an already decoded unsigned 32-bit integer.
 */
export function parseThrottled (value: unknown): number | null {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? value : null
  }
  if (typeof value !== 'string') return null
  const match = THROTTLED_PATTERN.exec(value)
  return match === null ? null : Number.parseInt(match[1]!, 16)
}

/** Named flags of a mask; throws InvalidThrottledError on anything `parseThrottled` rejects. */
export function decodeThrottled (value: string | number): ThrottledFlags {
  const mask = parseThrottled(value)
  if (mask === null) throw new InvalidThrottledError(value)
  const bit = (n: number): boolean => ((mask >>> n) & 1) === 1
  return {
    under_voltage: bit(0),
    arm_frequency_capped: bit(1),
    throttled: bit(2),
    soft_temperature_limit: bit(3),
    under_voltage_occurred: bit(16),
    arm_frequency_capped_occurred: bit(17),
    throttled_occurred: bit(18),
    soft_temperature_limit_occurred: bit(19)
  }
}

/** True when any "now" condition (bits 0–3) is set. */
export function throttledNow (mask: number): boolean {
  return (mask & THROTTLED_NOW_MASK) !== 0
}
