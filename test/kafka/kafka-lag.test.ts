import t from 'tap'
import { lagOf } from '../../kafka/consumer.js'

// The lag /health's stall check reads, from a librdkafka statistics document (STATISTICS.md).
t.test('lag is the high watermark less the committed offset, over the assigned partitions only', async t => {
  const stats = {
    topics: {
      pc1: {
        partitions: {
          0: { hi_offset: 120, lo_offset: 0, committed_offset: 100 },
          1: { hi_offset: 50, lo_offset: 10, committed_offset: -1001 },
          2: { hi_offset: 900, lo_offset: 0, committed_offset: 0 },
          '-1': { hi_offset: -1, lo_offset: -1, committed_offset: -1001 }
        }
      }
    }
  }
  const assigned = new Set(['pc1\u00000', 'pc1\u00001'])
  t.equal(lagOf(stats, assigned), 20 + 40, 'committed offset, else the log start; partition 2 is not ours')
  t.equal(lagOf(stats, new Set(['pc1\u0000-1'])), -1, 'unknown offsets are not a lag')
  t.equal(lagOf({ topics: { pc1: { partitions: { 0: { hi_offset: 7, lo_offset: 0, committed_offset: 7 } } } } }, new Set(['pc1\u00000'])), 0, 'caught up')
  t.equal(lagOf('not stats', assigned), -1, 'a document without topics')
})
