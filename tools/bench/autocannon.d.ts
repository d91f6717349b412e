// autocannon ships no types; the bench uses only this much of its API.
declare module 'autocannon' {
  interface Request { method?: string, path: string, headers?: Record<string, string> | undefined }
  export interface AutocannonResult {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
    latency: { mean: number, p50: number, p90: number, p99: number, max: number }
    throughput: { average: number }
  }
  interface AutocannonOptions {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    timeout?: number
    headers?: Record<string, string> | undefined
    requests?: Request[]
    setupClient?: (client: { setRequests: (requests: Request[]) => void }) => void
  }
  function autocannon (options: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void): unknown
  export default autocannon
}
