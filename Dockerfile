# syntax=docker/dockerfile:1
# modelgate: multi-stage build. Stage 1 compiles TypeScript with the dev dependencies; stage 2
# carries only production dependencies, the compiled output and the CLI shim, and runs as the
# unprivileged `node` user. Debian (glibc) base, not Alpine: lzma-native loads its prebuilt
# linux-x64/arm64 glibc binary. Described in README.md, "Docker"; built and run by
# test/e2e/docker.test.ts where a Docker daemon is reachable.
#
# Configuration is not baked in: mount a directory at /config (read-only) holding allowlist.json,
# the public keys it names (paths relative to it) and tokens.json. A directory, not single files:
# `modelgate trust add` and `token revoke` replace their file by a rename, which a single-file bind
# mount never shows the container (it keeps the old inode), so a revoked token would stay valid.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; lzma-native ships prebuilds.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. --ignore-scripts: `prepare` runs tsc, a dev dependency.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The application files stay root-owned and read-only to the service; only /data is writable
# (a new named volume copies this owner; otherwise root would own it).
RUN mkdir -p /data && chown node:node /data
# Listening on all interfaces is right inside a container only; outside, the default is 127.0.0.1.
# A non-loopback bind needs API tokens: without a readable tokens file the gateway refuses to start.
ENV HOST=0.0.0.0 \
    PORT=8080 \
    MODELGATE_DATA_DIR=/data \
    MODELGATE_ALLOWLIST=/config/allowlist.json \
    MODELGATE_TOKENS_FILE=/config/tokens.json
USER node
VOLUME ["/data"]
EXPOSE 8080
# serve stops on SIGTERM: in-flight requests get MODELGATE_SHUTDOWN_TIMEOUT_MS, then the rest are aborted.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || '8080') + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/modelgate.js"]
CMD ["serve"]
