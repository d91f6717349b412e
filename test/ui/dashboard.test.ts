import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build, dynaliteProcess, pcReading, piReading } from '../helper.js'
import { brokers, noBroker, produce, producer, unique } from '../kafka-helper.js'
import { AlertStore } from '../../alerts/store.js'
import { launch, noBrowser, open } from './browser.js'

// The dashboard in a real browser (./browser.ts). The pages use only the public API; the test
// feeds readings through the ingest service and through the real Kafka broker, and fails on any
// page error or console error. UPDATE_SCREENSHOTS=1 writes docs/dashboard-*.png.

const skip = noBroker !== false ? noBroker : noBrowser
const docs = fileURLToPath(new URL('../../../docs/', import.meta.url))

const HOT = { TemperatureCPUPackage: 100, LoadCPUTotal: 100, PowerCPUPackage: 120, ClockCPUCoreOne: 4800 }
const IDLE = { TemperatureCPUPackage: 40, LoadCPUTotal: 3, PowerCPUPackage: 5, ClockCPUCoreOne: 2400 }

t.test('fleet view and device view in chromium, with a row that changes live', { skip, timeout: 180_000 }, async t => {
  const topic = unique('ui')
  const app = await build(t, {
    env: {
      KAFKA_BROKERS: brokers!,
      KAFKA_TOPICS: topic,
      KAFKA_GROUP_ID: unique('ui'),
      STALE_AFTER_SECONDS: '600',
      STATUS_CACHE_TTL_MS: '250',
      HISTORY_CACHE_TTL_MS: '250'
    }
  })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const calm = unique('pc-calm')
  const hot = unique('pc-hot')
  const pi = unique('pi')
  const silent = unique('pc-silent')
  const now = Date.now()
  const history = (device: string, fields: Record<string, unknown>) =>
    Array.from({ length: 30 }, (_, i) => pcReading({ device, ...fields, TemperatureCPUPackage: Number(fields.TemperatureCPUPackage) - (i % 5) }, i * 2))
  await app.ingest.ingest([
    ...history(calm, IDLE),
    ...history(hot, HOT),
    ...Array.from({ length: 20 }, (_, i) => piReading({ device: pi, throttled: i % 4 === 0 ? '0x50005' : '0x50000', loading_datetime: new Date(now - i * 120_000).toISOString() })),
    pcReading({ device: silent, ...IDLE }, 60)
  ])
  // A firing alert episode of the hot device, as alerting records it (GET /alerts shows it).
  const hotStatus = (await app.inject(`/devices/${hot}/status`)).json()
  await new AlertStore(app.dynamo.doc, app.config.DYNAMODB_TABLE).recordEpisode({
    id: 'a'.repeat(32), rule: 'stressed', device: hot, state: 'firing', since: new Date(now - 60_000).toISOString(), last_status: hotStatus
  }, 'a'.repeat(32))

  const browser = await launch(t)

  const { page, problems } = await open(t, browser, base + '/')
  await page.waitForSelector(`tr[data-device="${calm}"]`)
  const state = async (device: string) => await page.getAttribute(`tr[data-device="${device}"]`, 'data-state')
  t.equal(await state(calm), 'ok')
  t.equal(await state(hot), 'stressed')
  t.equal(await state(pi), 'stressed', 'the Pi reports throttling now')
  t.equal(await state(silent), 'stale', 'an hour without a reading: not reporting')
  t.equal(await page.textContent(`tr[data-device="${silent}"] .state`), 'Not reporting', 'the state in words, not only colour')
  const order = await page.$$eval('tr[data-device]', rows => rows.map(r => (r as HTMLElement).dataset.device))
  t.ok(order.indexOf(calm) > order.indexOf(hot) && order.indexOf(calm) > order.indexOf(silent), `sorted by risk: ${order.join(', ')}`)
  t.equal(await page.textContent('[data-count="total"] .n'), '4')
  t.equal(await page.textContent('[data-count="stressed"] .n'), '2')
  await page.waitForSelector(`#alerts:not([hidden]) li[data-alert-device="${hot}"][data-alert-rule="stressed"]`)
  t.match(await page.textContent('#alerts'), /Firing alerts \(1\)/, 'firing alerts at the top of the fleet view')

  // Filters ask the API again.
  await page.selectOption('select[name="state"]', 'stale')
  await page.waitForFunction(() => document.querySelectorAll('tr[data-device]').length === 1)
  t.same(await page.$$eval('tr[data-device]', rows => rows.map(r => (r as HTMLElement).dataset.state)), ['stale'])
  await page.selectOption('select[name="state"]', '')
  await page.waitForSelector(`tr[data-device="${calm}"]`)
  if (process.env.UPDATE_SCREENSHOTS === '1') {
    await mkdir(docs, { recursive: true })
    await page.waitForTimeout(1500) // sparklines
    await page.screenshot({ path: `${docs}dashboard-fleet.png`, fullPage: true })
  }

  // A reading through Kafka turns the calm device stressed, without a reload.
  await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42 })
  const p = await producer(t)
  await produce(p, topic, pcReading({ device: calm, ...HOT }), calm)
  await page.waitForSelector(`tr[data-device="${calm}"][data-state="stressed"]`, { timeout: 30_000 })
  t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the row changed in the same page (no reload)')
  t.equal(await page.textContent(`tr[data-device="${calm}"] .state`), 'Stressed')

  // The device view: status and why, a chart per field, a CSV link.
  const device = await open(t, browser, `${base}/ui/devices/${hot}`)
  await device.page.waitForSelector('[data-chart="TemperatureCPUPackage"] canvas')
  await device.page.waitForSelector(`#alerts:not([hidden]) li[data-alert-device="${hot}"]`)
  t.pass('and on the device page')
  t.match(await device.page.textContent('#status'), /Stressed/)
  t.match(await device.page.textContent('#status'), /probability/)
  t.match(await device.page.textContent('#status'), /of being stressed \(threshold 0\.3\)\. Main factors:/, 'the PC model\'s own threshold, as the API reports it')
  // Each main factor with its effect, as the API words it (e.g. "+3.1", or the CPU's limit in words).
  t.ok(hotStatus.reasons.length > 0, 'the hot device\'s verdict has reasons')
  for (const reason of hotStatus.reasons as Array<{ field: string, value: number | string, effect: string }>) {
    const line = device.page.locator(`#status ul.reasons li[data-field="${reason.field}"]`)
    const value = typeof reason.value === 'number' ? reason.value.toFixed(1) : reason.value
    t.equal(await line.textContent(), `${reason.field} ${value} (${reason.effect})`, `${reason.field} with its effect: ${reason.effect}`)
    t.ok(await line.locator('.effect').isVisible(), 'the effect is visible')
  }
  for (const field of ['ClockCPUCoreOne', 'LoadCPUTotal', 'PowerCPUPackage']) {
    t.ok(await device.page.$(`[data-chart="${field}"] canvas`), `a chart of ${field}`)
  }
  t.notOk(await device.page.$('[data-chart="threshold"]'), 'no chart of the model\'s threshold (a setting, not a measurement)')
  t.match(await device.page.getAttribute('#csv', 'href'), new RegExp(`^/devices/${hot}/export\\?format=csv`))
  if (process.env.UPDATE_SCREENSHOTS === '1') await device.page.screenshot({ path: `${docs}dashboard-device.png`, fullPage: true })

  const piView = await open(t, browser, `${base}/ui/devices/${pi}`)
  await piView.page.waitForSelector('[data-chart="throttled_flags"] canvas')
  await piView.page.waitForSelector('[data-chart="CPU_temp_celsius"] canvas')
  t.equal(await piView.page.isHidden('#alerts'), true, 'no alerts section for a device without firing alerts')
  t.match(await piView.page.textContent('#status'), /reports throttling/, 'why: the hardware says so')

  t.same([...problems, ...device.problems, ...piView.problems], [], 'no page error and no console error')
})

t.test('the table down: the fleet view says its data is not current, and recovers', { skip, timeout: 120_000 }, async t => {
  const db = await dynaliteProcess(t)
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, STATUS_CACHE_TTL_MS: '100', DYNAMODB_TIMEOUT_MS: '1000' } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const device = unique('pc-outage')
  await app.ingest.ingest([pcReading({ device, ...IDLE })])
  const browser = await launch(t)
  const { page, problems } = await open(t, browser, base + '/')
  await page.waitForSelector(`tr[data-device="${device}"]`)
  t.equal(await page.isHidden('#banner'), true, 'no banner while the data is current')

  await db.kill()
  await page.reload()
  await page.waitForSelector('#banner:not([hidden])', { timeout: 30_000 })
  t.match(await page.textContent('#banner'), /not current/, 'the banner says what is shown is not current')
  t.ok(problems.some(p => /503/.test(p)), 'the page saw the 503')

  await db.start()
  // the page retries by itself (every 5 s) and clears the banner once the fleet reads again
  await page.waitForSelector(`tr[data-device="${device}"]`, { timeout: 30_000 })
  await page.waitForSelector('#banner[hidden]', { state: 'attached', timeout: 30_000 })
  t.pass('rows back and the banner gone without a reload')
})
