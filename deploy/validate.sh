#!/usr/bin/env bash
# Static checks of the deployment files; installs nothing (needs docker-compose, nginx; promtool if present).
#   deploy/validate.sh
# 1. docker-compose.yml parses and validates (docker-compose 1.29 or `docker compose` v2).
# 2. deploy/nginx.conf passes `nginx -t` on a test copy: compose service names become 127.0.0.1 ports,
#    and the user, pid and temp paths move to a scratch folder (this host has no `nginx` user).
# 3. deploy/prometheus.yml passes `promtool check config`, where promtool exists.
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
sed -e 's/^\([[:space:]]*\)server api1:8000/\1server 127.0.0.1:18001/' \
    -e 's/^\([[:space:]]*\)server api2:8000/\1server 127.0.0.1:18002/' \
    -e '/^user /d' \
    -e "s#^pid .*#pid $scratch/nginx.pid;#" \
    -e "s#^http {#http {\n    client_body_temp_path $scratch/client_body;\n    proxy_temp_path $scratch/proxy;\n    fastcgi_temp_path $scratch/fastcgi;\n    uwsgi_temp_path $scratch/uwsgi;\n    scgi_temp_path $scratch/scgi;#" \
    deploy/nginx.conf >"$scratch/nginx.conf"
if grep -nE 'server +api[0-9]+:' "$scratch/nginx.conf"; then
  echo "validate.sh: an upstream server was left unreplaced; update the sed lines above" >&2
  exit 1
fi
echo "== nginx -t -c <test copy of deploy/nginx.conf>"
nginx -t -p "$scratch" -e /dev/stderr -c "$scratch/nginx.conf"
echo "ok"

if command -v promtool >/dev/null; then
  echo "== promtool check config deploy/prometheus.yml"
  promtool check config deploy/prometheus.yml
fi
