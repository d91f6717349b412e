import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseAlerts, seconds, AlertsFileError } from '../../alerts/rules.js'
import { loadConfig } from '../../config.js'
import { spawnServer, tempDir } from '../helper.js'

const GOOD = `
channels:
  - name: ops
    type: webhook
    url: http://127.0.0.1:9/hook
    secret: \${OPS_SECRET}
  - name: chat
    type: telegram
    bot_token: \${TG_TOKEN}
    chat_id: "-100123"
rules:
  - name: stressed
    when: stressed
    for_seconds: 30
    devices: ["*"]
    channels: [ops, chat]
  - name: silent
    when: stale
    devices: ["pc*", "raspberry"]
    channels: [ops]
  - name: hot
    when: field
    field: TemperatureCPUPackage
    above: 90
    clear_below: 80
    for_seconds: 1m
    channels: [chat]
`

t.test('a good file: channels, rules, values from the environment, globs and durations', async t => {
  const alerts = parseAlerts(GOOD, { OPS_SECRET: 's3cret', TG_TOKEN: '123:abc' })
  t.equal(alerts.channels[0]!.secret, 's3cret')
  t.equal(alerts.channels[1]!.bot_token, '123:abc')
  t.equal(alerts.channels[1]!.api_url, 'https://api.telegram.org', 'telegram api_url defaults to the public Bot API')
  t.equal(alerts.rules[0]!.forSeconds, 30)
  t.equal(alerts.rules[2]!.forSeconds, 60, '"1m" is 60 s')
  t.same([alerts.rules[2]!.above, alerts.rules[2]!.clearBelow], [90, 80])
  const silent = alerts.rules[1]!
  t.ok(silent.devices.some(re => re.test('pc1')))
  t.ok(silent.devices.some(re => re.test('raspberry')))
  t.notOk(silent.devices.some(re => re.test('raspberry2')), 'globs are anchored')
  t.equal(alerts.delivery.retryForMs, 3_600_000)
})

t.test('JSON is read too', async t => {
  const alerts = parseAlerts(JSON.stringify({ channels: [{ name: 'a', type: 'slack', url: 'http://x/y' }], rules: [{ name: 'r', when: 'stressed', channels: ['a'] }] }))
  t.equal(alerts.channels[0]!.type, 'slack')
  t.equal(alerts.rules[0]!.forSeconds, 0)
})

t.test('each problem is one message naming it', async t => {
  const cases: Array<[string, RegExp]> = [
    ['channels: [{name: a, type: pager, url: "http://x"}]\nrules: [{name: r, when: stressed, channels: [a]}]', /unknown type "pager"/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: stressed, channels: [b]}]', /rule "r" names the channel "b", which does not exist/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: stressed, for_seconds: soon, channels: [a]}]', /for_seconds is not a duration/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: hot, channels: [a]}]', /rules\[0\]\.when is "hot"/],
    ['channels: [{name: a, type: telegram, chat_id: "1"}]\nrules: [{name: r, when: stressed, channels: [a]}]', /needs bot_token/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: field, above: 3, channels: [a]}]', /needs field and above/],
    ['channels: [{name: a, type: slack, url: "$' + '{NOPE}"}]\nrules: [{name: r, when: stressed, channels: [a]}]', /\{NOPE\}, which is not set/],
    ['channels: [ {', /does not parse/]
  ]
  for (const [text, message] of cases) {
    t.throws(() => parseAlerts(text, {}), message, String(message))
    t.throws(() => parseAlerts(text, {}), AlertsFileError)
  }
  t.equal(seconds('90s'), 90)
  t.equal(seconds('2h'), 7200)
  t.equal(seconds('x'), undefined)
})

t.test('loadConfig takes ALERTS_FILE; without it alerting is off', async t => {
  const dir = await tempDir(t)
  const file = join(dir, 'alerts.yaml')
  await writeFile(file, GOOD)
  const config = loadConfig({ ALERTS_FILE: file, OPS_SECRET: 'x', TG_TOKEN: 'y' })
  t.equal(config.alerts?.rules.length, 3)
  t.equal(loadConfig({}).alerts, undefined)
  const big = join(dir, 'big.yaml')
  await writeFile(big, '#'.repeat(1024 * 1024 + 1))
  t.throws(() => loadConfig({ ALERTS_FILE: big }), /^Invalid configuration: ALERTS_FILE .*big\.yaml is larger than 1024 KB$/)
})

t.test('a bad file stops start-up with one line naming ALERTS_FILE and the problem', async t => {
  const dir = await tempDir(t)
  const cases: Array<[string, RegExp]> = [
    ['channels: [{name: a, type: pager, url: "http://x"}]\nrules: [{name: r, when: stressed, channels: [a]}]', /unknown type "pager"/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: stressed, channels: [b]}]', /names the channel "b"/],
    ['channels: [{name: a, type: slack, url: "http://x"}]\nrules: [{name: r, when: stressed, for_seconds: "-5", channels: [a]}]', /not a duration/]
  ]
  let i = 0
  for (const [text, message] of cases) {
    const file = join(dir, `bad${i++}.yaml`)
    await writeFile(file, text)
    const { output, exited } = spawnServer(t, { ALERTS_FILE: file, DATA_DIR: dir })
    t.equal(await exited, 1, 'exits 1')
    const out = output().trim()
    t.equal(out.split('\n').length, 1, `one line: ${out}`)
    t.match(out, /^Invalid configuration: ALERTS_FILE /)
    t.match(out, message)
  }
  const { output, exited } = spawnServer(t, { ALERTS_FILE: join(dir, 'missing.yaml'), DATA_DIR: dir })
  t.equal(await exited, 1)
  t.match(output().trim(), /^Invalid configuration: ALERTS_FILE .*missing\.yaml cannot be read: ENOENT$/)
})
