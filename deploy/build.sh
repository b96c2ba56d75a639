#!/usr/bin/env bash
# Build the stack's images (docker-compose.yml): xmlc-serve, and the gateway, Redis and Prometheus
# images from Debian's packages.
#   deploy/build.sh            # public base images when Docker Hub answers, else a local base
# XMLC_BASE_IMAGE / XMLC_OS_IMAGE choose the base images; where pip needs a CA bundle of its own
# (PIP_CERT, a TLS-inspecting proxy), it goes to deploy/certs/ for the build stages only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -n "${PIP_CERT:-}" ] && [ -s "$PIP_CERT" ]; then
  cp "$PIP_CERT" deploy/certs/pip-ca.crt
fi
if [ -z "${XMLC_BASE_IMAGE:-}" ]; then
  if timeout 20 docker pull -q python:3.11-slim >/dev/null 2>&1; then
    export XMLC_BASE_IMAGE=python:3.11-slim XMLC_OS_IMAGE="${XMLC_OS_IMAGE:-debian:bookworm-slim}"
  else
    echo "Docker Hub does not answer: a local base image (deploy/local-base.sh)"
    deploy/local-base.sh
    export XMLC_BASE_IMAGE=xmlc-base:bookworm XMLC_OS_IMAGE="${XMLC_OS_IMAGE:-xmlc-base:bookworm}"
  fi
fi
export XMLC_OS_IMAGE="${XMLC_OS_IMAGE:-debian:bookworm-slim}"
start=$(date +%s)
# The classic builder: docker-compose 1.29 builds with it, and no BuildKit frontend is pulled.
DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0 docker-compose build api redis gateway prometheus
echo "built in $(($(date +%s) - start)) s on $XMLC_BASE_IMAGE / $XMLC_OS_IMAGE:"
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E 'xmlc-(serve|gateway|redis|prometheus|base)'
