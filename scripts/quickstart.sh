#!/usr/bin/env bash
# Fresh machine to a trained, evaluated bundle on a generated corpus, then one prediction.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e ".[serve,train,dev]"
xmlc demo --out runs/demo
xmlc predict --bundle runs/demo/bundle --text "wa wb wc wd we wf ta tb" -k 3
