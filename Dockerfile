# kometa in a container. Built and run here with Debian's podman
# (test: scripts/container-check.sh); docs/deploy.md#containers.
#
#   podman build -t kometa .
#   podman run --rm -p 8080:8080 -v kometa-data:/data -e KOMETA_ADMIN_TOKEN=… kometa
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
# Where the build cannot reach the npm registry: --build-arg npm_config_offline=true with a filled cache mounted at /root/.npm.
ARG npm_config_offline=false
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    KOMETA_HOST=0.0.0.0 \
    KOMETA_PORT=8080 \
    KOMETA_LOG_FORMAT=json \
    KOMETA_DATA_DIR=/data
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY web ./web
RUN mkdir -p /data && chown 1000:1000 /data
VOLUME /data
USER 1000:1000
EXPOSE 8080
# SIGTERM: subscribers are told to come back, and the process exits within --shutdown-grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
