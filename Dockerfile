# Snapper: a push-messaging broker. Untested here (no Docker engine on the
# build machine): kept plain on purpose. Redis is not included; point
# SNAPPER_REDIS at yours. uWebSockets.js ships glibc binaries, hence Debian,
# not Alpine.

# --- build: compile TypeScript with the dev dependencies -------------------
# Only what the image runs: dist/src and the SDK bundle, not the tests and benchmarks.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json tsconfig.sdk.json ./
COPY src ./src
RUN npm run build:runtime

# --- production dependencies only ------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

# --- runtime -----------------------------------------------------------------
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    SNAPPER_HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/sdk ./dist/sdk
COPY package.json ./
COPY lua ./lua
COPY web ./web
USER node
# 7700 producers (TCP), 7701 + i consumer gateway of worker i, 7699 admin (keep it private).
EXPOSE 7700 7701 7702 7699
# The check asks the admin app where it listens: SNAPPER_HOST when that is one address (IPv6 in
# brackets), 127.0.0.1 when it is every address (0.0.0.0, ::) or unset; the port from
# SNAPPER_ADMIN_PORT. It reads only these variables: in this image set host and admin port there
# (not in a --config file), and the port never to 0 (no admin app: the container stays unhealthy).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "const h = (process.env.SNAPPER_HOST || '').trim(); const host = h === '' || h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? '[' + h + ']' : h; fetch('http://' + host + ':' + (process.env.SNAPPER_ADMIN_PORT || 7699) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# SIGTERM drains gracefully: the workers within SNAPPER_DRAIN_TIMEOUT_MS, the primary within 2 s
# more. Set the container's stop timeout above drainTimeoutMs + 2 s (default 15 s: e.g. 20 s;
# Docker's own default, 10 s, would SIGKILL a drain midway).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/snapper.js"]
CMD ["start"]
