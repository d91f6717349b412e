// autocannon ships no types; the bench uses only this much of its API.
declare module 'autocannon' {
  interface AutocannonClient {
    setRequests: (requests: Array<{ method?: string, path: string, headers?: Record<string, string> }>) => void
  }
  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    p50: number
    p90: number
    p97_5: number
    p99: number
    p99_9?: number
    total: number
  }
  export interface AutocannonResult {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
    latency: Histogram
    requests: Histogram
    throughput: Histogram
  }
  interface AutocannonOptions {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    timeout?: number
    headers?: Record<string, string>
    requests?: Array<{ method?: string, path: string, headers?: Record<string, string> }>
    setupClient?: (client: AutocannonClient) => void
  }
  function autocannon (options: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void): unknown
  export default autocannon
}
