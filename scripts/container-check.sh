#!/usr/bin/env bash
# Build the Dockerfile with podman, run the image, check it serves and stops
# cleanly on SIGTERM. Not part of `npm test` (it needs podman and a base
# image); run by hand:  bash scripts/container-check.sh
#
#   KOMETA_NODE_IMAGE   base image (default docker.io/library/node:20-bookworm-slim)
#   KOMETA_PODMAN       podman command, e.g. "podman --runtime runc" where crun cannot run here
#   KOMETA_BUILD_ARGS   extra `podman build` arguments (an offline npm cache, --isolation chroot)
#   KOMETA_RUN_ARGS     extra `podman run` arguments (e.g. --ulimit values the host allows)
set -euo pipefail
cd "$(dirname "$0")/.."
podman_cmd=${KOMETA_PODMAN:-podman}
image=localhost/kometa:check
name=kometa-check-$$
port=${KOMETA_CHECK_PORT:-18080}

# shellcheck disable=SC2086
$podman_cmd build ${KOMETA_BUILD_ARGS:-} --build-arg "NODE_IMAGE=${KOMETA_NODE_IMAGE:-docker.io/library/node:20-bookworm-slim}" -t "$image" .
# shellcheck disable=SC2086
$podman_cmd run -d --name "$name" --network host ${KOMETA_RUN_ARGS:-} -e KOMETA_PORT="$port" "$image" >/dev/null
trap '$podman_cmd rm -f "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/healthz"; echo
curl -sf -d 'hello from the container' "http://127.0.0.1:$port/pub/demo"; echo
curl -sf -o /dev/null "http://127.0.0.1:$port/kometa.js" && echo "client bundle served"
[ "$($podman_cmd exec "$name" id -u)" = 1000 ] && echo "runs as uid 1000, not root"
$podman_cmd stop -t 20 "$name" >/dev/null
[ "$($podman_cmd inspect --format '{{.State.ExitCode}}' "$name")" = 0 ]
$podman_cmd logs "$name" 2>&1 | grep -q '"event":"stop"'
echo "stopped on SIGTERM: exit code 0, logged its stop"
