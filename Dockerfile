# Pylee: one image for every role. `docker run pylee` starts all roles on the embedded stores
# (data in /var/lib/pylee); docker-compose.yml runs each role separately on real stores.
# Plain Dockerfile syntax (no BuildKit-only features) so docker-compose 1.29's builder can use it too.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# package.json goes in with the lockfile: it holds the `allowScripts` approvals npm 11 checks
# before it runs install scripts (chdb, protobufjs, msgpackr-extract). Native parts come as
# prebuilt optional packages for linux x64/arm64 glibc, so no compiler is needed here.
COPY package.json package-lock.json ./
# npm install (not ci) for the same reason as .ci/run: the lockfile lists only the engines the
# registry had. It still installs the locked versions.
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# The embedded default starts redis-server itself when PYLEE_REDIS_URL is unset.
RUN apt-get update \
  && apt-get install -y --no-install-recommends redis-server \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p /var/lib/pylee \
  && chown node:node /var/lib/pylee
ENV NODE_ENV=production \
  PYLEE_HOST=0.0.0.0 \
  PYLEE_DATA_DIR=/var/lib/pylee
WORKDIR /app
# Code and dependencies stay root-owned (read-only to the process); only the data dir is writable.
COPY --from=deps /app/node_modules ./node_modules
# .dockerignore keeps this to package files, the roles' sources and a built web UI (web/build).
COPY . .
USER node
EXPOSE 8080 4318
# No HEALTHCHECK here: only the api role serves HTTP on 8080; docker-compose.yml checks per service.
ENTRYPOINT ["node", "cli/main.ts"]
CMD ["start"]
