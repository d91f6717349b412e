import t from 'tap'
import { build, pcReading } from '../helper.js'
import { launch, noBrowser as skip, open } from './browser.js'

// Issue 19 in the browser: the dashboard with API_KEYS (it asks for the key, keeps it for the tab,
// its live rows keep coming through the session cookie), and Swagger UI under the service's
// Content-Security-Policy. Any page error or console error (a CSP violation is one) fails.

const KEY = 'browser-key-0123456789abcdef'

t.test('the dashboard with API_KEYS: asks for the key, then shows the fleet and changes a row live', { skip, timeout: 120_000 }, async t => {
  const app = await build(t, { env: { API_KEYS: `ui:${KEY}`, STALE_AFTER_SECONDS: '600', STATUS_CACHE_TTL_MS: '250', HISTORY_CACHE_TTL_MS: '250' } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  await app.ingest.ingest([pcReading({ device: 'pc-key', TemperatureCPUPackage: 40, LoadCPUTotal: 3, PowerCPUPackage: 5, ClockCPUCoreOne: 2400 })])
  const browser = await launch(t)
  const { page, problems } = await open(t, browser, base + '/')
  await page.waitForSelector('#api-key-form input[name="key"]')
  t.equal(await page.$('tr[data-device]'), null, 'no data before the key')
  await page.fill('#api-key-form input[name="key"]', KEY)
  await page.click('#api-key-form button')
  await page.waitForSelector('tr[data-device="pc-key"][data-state="ok"]')
  t.equal(await page.evaluate(() => sessionStorage.getItem('sensors-api-key')), KEY, 'kept for the tab\'s session')
  // the stream opens once the session cookie is set
  for (let i = 0; i < 100 && app.eventStreams.size === 0; i++) await page.waitForTimeout(100)
  t.equal(app.eventStreams.size, 1, 'the fleet\'s event stream is open')
  const cookies = await page.context().cookies()
  const session = cookies.find(c => c.name === 'sensors_session')
  t.ok(session?.httpOnly, 'the event streams\' session cookie is HttpOnly')
  t.equal(session?.sameSite, 'Strict')

  await page.evaluate(() => { (window as unknown as { marker: number }).marker = 7 })
  await app.ingest.ingest([pcReading({ device: 'pc-key', TemperatureCPUPackage: 100, LoadCPUTotal: 100, PowerCPUPackage: 120, ClockCPUCoreOne: 4800 })])
  await page.waitForSelector('tr[data-device="pc-key"][data-state="stressed"]', { timeout: 30_000 })
  t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 7, 'live, without a reload')

  await page.reload()
  await page.waitForSelector('tr[data-device="pc-key"]')
  t.equal(await page.$('#api-key-form'), null, 'not asked again in the same tab')
  const device = page
  await device.goto(`${base}/ui/devices/pc-key`)
  await device.waitForSelector('[data-chart="TemperatureCPUPackage"] canvas')
  t.pass('the device view, charts included, with the kept key')
  const csv = await device.evaluate(async () => (await fetch((document.getElementById('csv') as HTMLAnchorElement).href)).status)
  t.equal(csv, 200, 'the CSV link works with the session cookie')
  t.same(problems.filter(p => !/401/.test(p)), [], 'no page error and no console error (CSP included), the first 401s aside')
})

t.test('Swagger UI loads under the CSP, and its Authorize takes the key', { skip, timeout: 60_000 }, async t => {
  const app = await build(t, { env: { API_KEYS: `ui:${KEY}` } })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launch(t)
  const { page, problems } = await open(t, browser, base + '/docs')
  await page.waitForSelector('.opblock-tag', { timeout: 30_000 })
  await page.click('button.authorize')
  await page.waitForSelector('.modal-ux input')
  const inputs = await page.$$('.modal-ux input')
  t.ok(inputs.length >= 2, 'bearer and X-API-Key offered')
  await inputs[0]!.fill(KEY)
  await page.locator('.modal-ux .auth-btn-wrapper button.authorize').first().click()
  await page.locator('.modal-ux button.btn-done').first().click()
  // an operation tried out: the key goes with it
  const op = page.locator('#operations-fleet-get_fleet')
  await op.locator('.opblock-summary').first().click()
  await op.getByRole('button', { name: 'Try it out' }).click()
  const answer = page.waitForResponse(r => new URL(r.url()).pathname === '/fleet', { timeout: 15_000 })
  await op.getByRole('button', { name: 'Execute' }).click()
  const res = await answer
  t.equal(res.request().headers().authorization, `Bearer ${KEY}`, 'Try it out sends the key')
  t.equal(res.status(), 200, 'and GET /fleet answers')
  t.same(problems, [], 'no page error and no console error')
})
