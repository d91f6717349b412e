import t from 'tap'
import { preferredType } from '../../http/accept.js'

const offered = ['application/x-ndjson', 'text/csv'] as const

t.test('the offered type the Accept header weighs most, a tie to the first offered', async t => {
  t.equal(preferredType(undefined, offered), undefined, 'no header: the caller\'s default')
  t.equal(preferredType('text/csv', offered), 'text/csv')
  t.equal(preferredType('TEXT/CSV; charset=utf-8', offered), 'text/csv', 'case and parameters other than q do not matter')
  t.equal(preferredType('application/x-ndjson', offered), 'application/x-ndjson')
  t.equal(preferredType('application/json', offered), undefined, 'neither named')
  t.equal(preferredType('*/*', offered), 'application/x-ndjson', 'a tie goes to the first offered')
  t.equal(preferredType('text/*', offered), 'text/csv')
  t.equal(preferredType('text/csv;q=0.5, application/x-ndjson', offered), 'application/x-ndjson')
  t.equal(preferredType('text/csv, application/x-ndjson;q=0.9', offered), 'text/csv')
  t.equal(preferredType('text/csv;q=0, */*', offered), 'application/x-ndjson', 'q=0 refuses a type, whatever */* says')
  t.equal(preferredType('text/csv;q=0', offered), undefined)
  t.equal(preferredType('*/*;q=0.1, text/csv', offered), 'text/csv')
  t.equal(preferredType(['text/html', 'text/csv'], offered), 'text/csv', 'repeated headers are one list')
  t.equal(preferredType('text/csv;q=abc', offered), undefined, 'a weight that is not a number: the range is ignored')
})
