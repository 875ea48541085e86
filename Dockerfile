# syntax=docker/dockerfile:1
#
# One image for both roles: docker-compose.yml picks the entry point
# (dist/apps/gateway/main.js or dist/apps/worker/main.js). No HEALTHCHECK here on purpose:
# the two roles answer on different ports, so each compose service defines its own.

# Node 22 LTS in the image; the repo itself only needs >=20.19 (package.json engines).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until the lockfile changes.
COPY package.json package-lock.json ./
# --ignore-scripts: native add-ons (msgpackr-extract) load their prebuilt binaries without
# install scripts, and the slim base has no compiler toolchain for a fallback build anyway.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json nest-cli.json ./
COPY libs ./libs
COPY apps ./apps
# webpack bundles the apps and libs (path aliases resolved) but leaves node_modules external,
# so the runtime stage still needs the production dependencies installed.
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# Set before `npm ci` as well: some packages pick a production code path at install time.
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# Code and dependencies stay owned by root: the app only reads them, so a compromised
# process cannot rewrite its own code.
COPY --from=build /app/dist ./dist
USER node
# 3000: gateway HTTP + Socket.IO; 9464: worker health and metrics.
EXPOSE 3000 9464
CMD ["node", "dist/apps/gateway/main.js"]
