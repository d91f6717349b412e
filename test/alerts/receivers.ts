import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface Received {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

export interface Receiver {
  url: string
  received: Received[]
  /** the status of each answer in turn (the last one repeats); default 200 */
  answers: number[]
  close: () => Promise<void>
}

/** A real HTTP server on a free port that records every request and answers as told. Closed when the test ends. */
export async function receiver (t: Teardown, answers: number[] = [200], port = 0): Promise<Receiver> {
  const received: Received[] = []
  const r: Receiver = { url: '', received, answers, close: async () => {} }
  let served = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      const status = r.answers[Math.min(served++, r.answers.length - 1)] ?? 200
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(status < 300 ? '{"ok":true}' : '{"ok":false}')
    })
  })
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  r.close = () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  t.teardown(() => r.close())
  return r
}
