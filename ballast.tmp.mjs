// experiment only: the floor with the service's modules loaded and a live heap of the same size
await import('fastify'); await import('@aws-sdk/client-dynamodb'); await import('@aws-sdk/lib-dynamodb'); await import('@fastify/swagger'); await import('@fastify/swagger-ui'); await import('@sinclair/typebox')
globalThis.__ballast = Array.from({ length: 150_000 }, (_, i) => ({ i, s: 'x' + i, a: [i, i + 1], o: { k: i } }))
