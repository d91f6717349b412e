import { createServer } from 'node:http'
import { KEEP_ALIVE_TIMEOUT_MS } from '../../server-options.js'
import { answerGc } from './gc.js'

// The floor: what node:http alone costs on this machine. A bare `http.createServer` (no framework,
// no routing, no validation, no data access) in its own process, on the service's Node.js, that
// answers each path with the very status code, headers and body bytes the service answered for
// it (captured by the runner, identity-coded). No server in Node.js answers these requests for
// less. Over IPC: takes "answers", then says "ready" with its port.

export interface CapturedAnswer { code: number, headers: Record<string, string>, body: string }

process.once('message', (msg: { type: string, answers: Record<string, CapturedAnswer> }) => {
  const answers = new Map(Object.entries(msg.answers).map(([path, a]) => {
    const body = Buffer.from(a.body, 'base64')
    return [path, { code: a.code, headers: { ...a.headers, 'content-length': String(body.length) }, body }]
  }))
  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
    const answer = answers.get(req.url ?? '')
    if (answer === undefined) res.writeHead(404).end()
    else res.writeHead(answer.code, answer.headers).end(answer.body)
  })
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.send?.({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 })
  })
  answerGc()
})

process.once('SIGTERM', () => { process.exit(0) })
// the bench runner is gone: do not outlive it
process.once('disconnect', () => { process.exit(0) })
