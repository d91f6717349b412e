import { createRequire } from 'node:module'

/**
 * `node:http`, loaded as CommonJS. An ES `import … from 'node:http'` builds the module's namespace,
 * which reads every export, and on Node.js 22 and later three of them (`WebSocket`, `CloseEvent`,
 * `MessageEvent`) are lazy getters that load Node's bundled undici: 0.8 MB of source and its
 * start-up, about 15 MB of RSS in a bare process and 8 to 13 MB in the service, for a client it never
 * uses. `import type` from 'node:http' is erased and costs nothing.
 */
export const nodeHttp = createRequire(import.meta.url)('node:http') as typeof import('node:http')
