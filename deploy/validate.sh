#!/usr/bin/env bash
# Static checks of the deployment files; installs nothing (needs docker-compose, nginx; promtool if present).
#   deploy/validate.sh
# 1. docker-compose.yml parses and validates (docker-compose 1.29 or `docker compose` v2).
# 2. deploy/nginx.conf passes `nginx -t` on a test copy: the user, pid and temp paths move to a scratch
#    folder (the replicas are a name resolved at request time, so nothing else changes).
# 3. deploy/prometheus.yml passes `promtool check config`, where promtool exists.
# 4. The Kubernetes manifests build (`kubectl kustomize`) and validate offline (kubernetes-validate);
#    KEDA's ScaledObject, which has no schema there, is checked by tests/deploy/test_k8s.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  compose=(docker compose)
fi
echo "== ${compose[*]} -f docker-compose.yml config -q"
"${compose[@]}" -f docker-compose.yml config -q
echo "ok"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
sed -e '/^user /d' \
    -e "s#^pid .*#pid $scratch/nginx.pid;#" \
    -e "s#^http {#http {\n    client_body_temp_path $scratch/client_body;\n    proxy_temp_path $scratch/proxy;\n    fastcgi_temp_path $scratch/fastcgi;\n    uwsgi_temp_path $scratch/uwsgi;\n    scgi_temp_path $scratch/scgi;#" \
    deploy/nginx.conf >"$scratch/nginx.conf"
echo "== nginx -t -c <test copy of deploy/nginx.conf>"
nginx -t -p "$scratch" -e /dev/stderr -c "$scratch/nginx.conf"
echo "ok"

if command -v promtool >/dev/null; then
  echo "== promtool check config deploy/prometheus.yml"
  promtool check config deploy/prometheus.yml
fi

if command -v kubectl >/dev/null && command -v kubernetes-validate >/dev/null; then
  for overlay in keda hpa; do
    echo "== kubectl kustomize deploy/k8s/overlays/$overlay | kubernetes-validate --strict"
    kubectl kustomize "deploy/k8s/overlays/$overlay" >"$scratch/$overlay.yaml"
    kubernetes-validate --strict --quiet "$scratch/$overlay.yaml"
  done
  echo "ok"
fi
