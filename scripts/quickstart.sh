#!/usr/bin/env bash
# Fresh machine -> trained bundle on a generated corpus -> running service -> one answered request.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e ".[serve,train,dev]"

xmlc demo --out runs/demo                      # generate, train, evaluate, predict once

port=${XMLC_PORT:-8000}
xmlc serve --bundle runs/demo/bundle --port "$port" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/ready')" 2>/dev/null && break
  sleep 0.2
done
echo "POST /predict:"
python3 - "$port" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/predict",
    data=json.dumps({"text": "wa wb wc wd we wf ta tb", "k": 3}).encode(),
    headers={"content-type": "application/json"},
)
print(json.dumps(json.load(urllib.request.urlopen(req)), indent=2))
PY
