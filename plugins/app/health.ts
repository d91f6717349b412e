import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ComponentState, Health } from '../../schemas/common.js'

export type { ComponentState }

export interface HealthRegistry {
  /** a component the service needs: /health is 503 while any registered check is "down" */
  register: (name: string, check: () => ComponentState | Promise<ComponentState>, options?: { critical?: boolean }) => void
  check: () => Promise<Health>
}

declare module 'fastify' {
  interface FastifyInstance {
    health: HealthRegistry
  }
}

const CHECK_TIMEOUT_MS = 2000

export default fp(async function health (fastify: FastifyInstance) {
  const checks = new Map<string, () => ComponentState | Promise<ComponentState>>()
  const informational = new Set<string>()

  async function run (check: () => ComponentState | Promise<ComponentState>): Promise<ComponentState> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        Promise.resolve().then(check),
        new Promise<ComponentState>(resolve => {
          timer = setTimeout(() => resolve({ status: 'down', reason: 'timeout' }), CHECK_TIMEOUT_MS)
        })
      ])
    } catch (err) {
      // The answer names a fixed reason; the error is the log's (debug: an outage is logged
      // once by whoever sees it first, storage/outage.ts for the table, not at every probe).
      fastify.log.debug({ err }, 'health check failed')
      return { status: 'down', reason: 'unreachable' }
    } finally {
      clearTimeout(timer)
    }
  }

  fastify.decorate('health', {
    register (name, check, options) {
      checks.set(name, check)
      if (options?.critical === false) informational.add(name)
    },
    async check () {
      const names = [...checks.keys()]
      const states = await Promise.all(names.map(name => run(checks.get(name)!)))
      const components: Health['components'] = {}
      names.forEach((name, i) => { components[name] = states[i]! })
      const down = names.some((name, i) => states[i]!.status === 'down' && !informational.has(name))
      return { status: down ? 'unavailable' : 'ok', components }
    }
  })
}, { name: 'health' })
