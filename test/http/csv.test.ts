import t from 'tap'
import { csvField, csvRow, csvTable } from '../../http/csv.js'

t.test('fields are quoted as RFC 4180 says, and only when they must be', async t => {
  t.equal(csvField('pc1'), 'pc1')
  t.equal(csvField('a,b'), '"a,b"')
  t.equal(csvField('say "hi"'), '"say ""hi"""')
  t.equal(csvField('two\nlines'), '"two\nlines"')
  t.equal(csvField('cr\r'), '"cr\r"')
  t.equal(csvField(42.5), '42.5')
  t.equal(csvField(-0.25), '-0.25')
  t.equal(csvField(true), 'true')
  t.equal(csvField(null), '')
  t.equal(csvField(undefined), '')
  t.equal(csvField({ a: 1, b: 'x' }), '"{""a"":1,""b"":""x""}"', 'an object as its JSON, quoted')
})

t.test('rows end with CRLF; a table starts with its header, columns in its order', async t => {
  t.equal(csvRow(['a', 1, null]), 'a,1,\r\n')
  t.equal(csvTable(['device', 'state'], [{ state: 'ok', device: 'pc1' }, { device: 'p,2' }]), 'device,state\r\npc1,ok\r\n"p,2",\r\n')
})
