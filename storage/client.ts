import type { Server } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { DEFAULT_DYNAMODB_TIMEOUT_MS } from '../config.js'
import { nodeHttp } from '../http/node-http.js'

export interface DynamoOptions {
  mode: 'embedded' | 'endpoint' | 'aws'
  endpoint?: string | undefined
  region?: string | undefined
  /** how long one request (attempt) may take before it is abandoned as a TimeoutError, which the SDK retries */
  requestTimeoutMs?: number
  dataDir: string
}

export interface Dynamo {
  client: DynamoDBClient
  doc: DynamoDBDocumentClient
  /** where requests go, for logs and health */
  endpoint: string
  mode: DynamoOptions['mode']
  close: () => Promise<void>
}

export interface EmbeddedDynamo {
  endpoint: string
  server: Server
  close: () => Promise<void>
}

/** How long requests the embedded DynamoDB is answering get to finish when it closes. */
const CLOSE_GRACE_MS = 2000

/** Starts dynalite in-process on a free loopback port, its LevelDB files under `dataDir/dynamodb`. */
export async function startEmbeddedDynamo (dataDir: string | null, port = 0): Promise<EmbeddedDynamo> {
  let path: string | undefined
  if (dataDir !== null) {
    path = join(dataDir, 'dynamodb')
    await mkdir(path, { recursive: true })
  }
  // Loaded here, not at the top: a service on AWS or another endpoint never needs dynalite and LevelDB.
  const { default: dynalite } = await import('dynalite')
  const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
  const { port: bound } = server.address() as AddressInfo
  let closed = false
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    server,
    // dynalite closes its store when its server has closed, so requests it is answering are
    // let finish (a store closed under one makes dynalite throw): no new connections, idle ones
    // closed as they become idle, and any still open after a grace period cut.
    close: async () => {
      if (closed) return
      closed = true
      const done = new Promise<void>(resolve => server.close(() => resolve()))
      server.closeIdleConnections()
      const idle = setInterval(() => { server.closeIdleConnections() }, 10)
      const cut = setTimeout(() => { server.closeAllConnections() }, CLOSE_GRACE_MS)
      await done
      clearInterval(idle)
      clearTimeout(cut)
    }
  }
}

function describeLockError (err: unknown, dataDir: string): Error {
  const text = String((err as Error)?.message ?? err) + String((err as { cause?: Error })?.cause?.message ?? '')
  if (/LOCK|lock/.test(text)) {
    return new Error(`The embedded DynamoDB under ${dataDir} is in use by another process: stop it or set another DATA_DIR`, { cause: err })
  }
  return err as Error
}

export async function createDynamo (options: DynamoOptions): Promise<Dynamo> {
  let embedded: EmbeddedDynamo | undefined
  let endpoint = options.endpoint
  if (options.mode === 'embedded') {
    try {
      embedded = await startEmbeddedDynamo(options.dataDir)
    } catch (err) {
      throw describeLockError(err, options.dataDir)
    }
    endpoint = embedded.endpoint
  }
  const local = options.mode !== 'aws'
  const client = new DynamoDBClient({
    region: options.region ?? (local ? 'local' : undefined),
    ...(endpoint !== undefined ? { endpoint } : {}),
    // A local endpoint (embedded, dynalite, DynamoDB Local) takes any credentials; AWS uses the
    // SDK's default chain (the ECS task role on Fargate).
    ...(local && process.env.AWS_ACCESS_KEY_ID === undefined
      ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {}),
    maxAttempts: 3,
    requestHandler: {
      httpAgent: new nodeHttp.Agent({ keepAlive: true, maxSockets: 128 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 128 }),
      connectionTimeout: 2000,
      requestTimeout: options.requestTimeoutMs ?? DEFAULT_DYNAMODB_TIMEOUT_MS,
      // Without it the SDK only logs a warning when the time is up and the request waits on: a
      // DynamoDB that accepts and never answers would hold every reader of it forever.
      throwOnRequestTimeout: true
    }
  })
  const doc = DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false }
  })
  return {
    client,
    doc,
    endpoint: endpoint ?? `dynamodb.${options.region ?? ''}.amazonaws.com`,
    mode: options.mode,
    close: async () => {
      client.destroy()
      if (embedded !== undefined) await embedded.close()
    }
  }
}
