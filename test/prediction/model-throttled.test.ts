import t from 'tap'
import { decodeThrottled, InvalidThrottledError, parseThrottled, throttledNow, type ThrottledFlags } from '../../prediction/throttled.js'

const none: ThrottledFlags = {
  under_voltage: false,
  arm_frequency_capped: false,
  throttled: false,
  soft_temperature_limit: false,
  under_voltage_occurred: false,
  arm_frequency_capped_occurred: false,
  throttled_occurred: false,
  soft_temperature_limit_occurred: false
}

t.test('documented examples', async t => {
  t.same(decodeThrottled('0x0'), none)
  t.same(decodeThrottled('0x50005'), { ...none, under_voltage: true, throttled: true, under_voltage_occurred: true, throttled_occurred: true })
  t.same(decodeThrottled('0x80008'), { ...none, soft_temperature_limit: true, soft_temperature_limit_occurred: true })
  t.same(decodeThrottled('0xe0000'), { ...none, arm_frequency_capped_occurred: true, throttled_occurred: true, soft_temperature_limit_occurred: true })
  t.same(decodeThrottled('0xf0008'), {
    ...none,
    soft_temperature_limit: true,
    under_voltage_occurred: true,
    arm_frequency_capped_occurred: true,
    throttled_occurred: true,
    soft_temperature_limit_occurred: true
  })
})

t.test('accepted spellings', async t => {
  t.equal(parseThrottled('throttled=0x50005'), 0x50005)
  t.equal(parseThrottled(' throttled=0x50005\n'), 0x50005, 'vcgencmd output with its newline')
  t.equal(parseThrottled('0XE0000'), 0xe0000)
  t.equal(parseThrottled(0x80008), 0x80008, 'an already decoded number')
  t.same(decodeThrottled('throttled=0x4'), { ...none, throttled: true })
})

t.test('invalid input', async t => {
  for (const bad of ['', '0x', '50005', 'throttled=', '0xg', '0x1 2', 'throttled=0x123456789', 'hot', '-0x1']) {
    t.equal(parseThrottled(bad), null, `parseThrottled(${JSON.stringify(bad)})`)
    t.throws(() => decodeThrottled(bad), InvalidThrottledError)
  }
  for (const bad of [null, undefined, -1, 1.5, Number.NaN, 2 ** 32, {}, [0]]) t.equal(parseThrottled(bad), null, `parseThrottled(${String(bad)})`)
  t.throws(() => decodeThrottled('0xzz'), /Invalid throttled value "0xzz": expected a hex bit mask/)
})

t.test('throttledNow: any of bits 0-3', async t => {
  t.equal(throttledNow(0x0), false)
  for (const mask of [0x1, 0x2, 0x4, 0x8, 0x50005, 0x80008, 0xf0008]) t.equal(throttledNow(mask), true, mask.toString(16))
  for (const mask of [0x10, 0x80000, 0xe0000, 0xf0000]) t.equal(throttledNow(mask), false, `occurred only: ${mask.toString(16)}`)
})
