import type { FastifyInstance } from 'fastify'

export default async function root (fastify: FastifyInstance) {
  fastify.get('/', { schema: { hide: true } }, async function redirectToDocs (_request, reply) {
    return await reply.redirect('/docs', 302)
  })
}
