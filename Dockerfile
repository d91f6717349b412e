# syntax=docker/dockerfile:1
# sensors-api: one image for every ROLE (all | api | ingest).
#   docker build -t sensors-api .
#   docker run --rm -p 3000:3000 sensors-api                 # embedded DynamoDB, no Kafka
#   docker run --rm -p 3000:3000 -e AWS_REGION=eu-west-1 -e ROLE=api sensors-api
# The build stage compiles librdkafka (node-rdkafka's install script) with SSL and SASL;
# the runtime stage carries only the shared libraries it links against.
# tools/check-image-build.sh runs this file's build-stage RUN commands outside Docker.

FROM node:26-bookworm AS build

# Toolchain and headers for node-gyp + librdkafka: OpenSSL (SSL, SASL SCRAM/OAUTHBEARER),
# Cyrus SASL (GSSAPI/Kerberos), zlib, lz4 and zstd codecs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        python3 \
        libssl-dev \
        libsasl2-dev \
        zlib1g-dev \
        liblz4-dev \
        libzstd-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false

# Dependencies first (cached while package*.json do not change). node-rdkafka's install
# script must run: package.json's allowScripts lets it.
COPY package.json package-lock.json ./
RUN npm ci

COPY . .

# Compile, drop dev dependencies, then drop librdkafka's sources and static objects
# (~500 MB; the addon links build/deps/librdkafka.so.1) and prove the client still
# loads with SSL and SASL.
RUN npm run build \
    && npm prune --omit=dev \
    && rm -rf node_modules/node-rdkafka/deps/librdkafka \
        node_modules/node-rdkafka/build/Release/obj.target \
        node_modules/node-rdkafka/build/deps/include \
        node_modules/node-rdkafka/build/deps/*.a \
    && node -e "const k=require('node-rdkafka');for(const f of ['ssl','sasl_plain','sasl_scram'])if(!k.features.includes(f))throw new Error('librdkafka lacks '+f);console.log('librdkafka',k.librdkafkaVersion,k.features.join(','))" \
    && mkdir .compile-cache \
    && chown 1000:1000 .compile-cache

# Node's compile cache of every module the service loads, made by the runtime's user (Node keeps
# one per uid) over the very files the runtime stage copies: a new container's first start is as
# fast as a restart (~0.3 s less on Node 24). Read-only at runtime (hence a+r: Node writes 0600),
# relative to WORKDIR; unused if the two stages' Node versions differ.
USER 1000:1000
RUN NODE_COMPILE_CACHE=.compile-cache node tools/warm-compile-cache.mjs \
    && chmod -R a+rX .compile-cache

FROM node:26-bookworm-slim AS runtime

# Runtime libraries of librdkafka, and CA certificates for TLS to the brokers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        libsasl2-2 \
        zlib1g \
        liblz4-1 \
        libzstd1 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /app/data \
    && chown node:node /app/data

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data \
    NODE_COMPILE_CACHE=.compile-cache

# The process's memory (BENCHMARKS.md, "Memory"; the bench runs the service with these too):
# a young generation of 2 x 4 MB instead of the 2 x 8 MB V8 picks in a 1 GiB task (a scavenge
# every few tens of ms under load, each well under a millisecond), and two glibc malloc arenas
# instead of one per thread (libuv's and V8's workers each kept their own, mostly free).
ENV NODE_OPTIONS="--max-semi-space-size=4" \
    MALLOC_ARENA_MAX=2

# Application files stay owned by root: the service cannot rewrite its own code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/models ./models
COPY --from=build /app/ui ./ui
COPY --from=build /app/.compile-cache ./.compile-cache

# The base image's unprivileged "node" user, by id (lets runAsNonRoot-style checks verify it).
USER 1000:1000
EXPOSE 3000

# Slim images have no curl: node's fetch probes the same /health the ALB uses.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]

# node itself is PID 1's command (exec form, no npm, no shell): SIGTERM reaches the
# server, which drains within SHUTDOWN_TIMEOUT_MS and exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
