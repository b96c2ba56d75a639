# xmlc-serve images (multi-stage; the classic builder and BuildKit both build it).
#   serving:   docker build --target serve -t xmlc-serve .     (also the default target)
#   training:  docker build --target trainer -t xmlc-train .
# With the classic builder (DOCKER_BUILDKIT=0) name the target: it builds every stage before it.
#
# BASE_IMAGE is any Debian-like image with python3 and its venv module: the public python:3.11-slim by
# default; where Docker Hub cannot be reached, deploy/local-base.sh makes one from the Debian mirror
# (deploy/build.sh passes it). Where pip needs a CA bundle of its own (a TLS-inspecting proxy),
# deploy/build.sh copies it to deploy/certs/pip-ca.crt: the build stages read it, the serving image
# never holds it (it copies only the virtual environment).

ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------------
# builder: a virtual environment with the project and its `serve` extra (hnswlib compiles: a C++ compiler).
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && (python3 -c "import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" \
        || apt-get install -y --no-install-recommends python3-dev) \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY deploy/certs/ /tmp/certs/
WORKDIR /src
COPY pyproject.toml README.md ./
COPY xmlc ./xmlc
COPY app ./app
COPY training ./training
COPY model_export ./model_export
RUN if [ -s /tmp/certs/pip-ca.crt ]; then export PIP_CERT=/tmp/certs/pip-ca.crt; fi \
    && pip install ".[serve]"

# ---------------------------------------------------------------------------------------------------------
# serving: the virtual environment and nothing else: no torch, no compiler, no data.
# The beam-search kernels are compiled at build time (into /opt/numba-cache, copied to NUMBA_CACHE_DIR at
# start), so a replica starts without compiling, under a read-only root filesystem.
FROM builder AS serve-venv
# What serving never runs goes: pip and setuptools, the packages' own test suites. (Not `strip`: the
# wheels' bundled libraries are patched by auditwheel and stop loading once stripped.)
RUN pip uninstall -y -q pip setuptools wheel \
    && find /opt/venv/lib -depth -type d -name tests -exec rm -rf {} +

FROM ${BASE_IMAGE} AS serve
COPY --from=serve-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache XMLC_BUNDLE=/models/current XMLC_WORKERS=1
RUN python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
    && NUMBA_CACHE_DIR=/opt/numba-cache python3 -m xmlc.warm_kernels \
    && groupadd --system --gid 10001 xmlc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent xmlc \
    && mkdir -p /models/current /srv/xmlc
# An empty folder, not the source tree: `app` and `xmlc` are imported from the virtual environment.
WORKDIR /srv/xmlc
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request as r; sys.exit(r.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# One worker per container: replicas scale out behind the gateway, and each process owns its /metrics.
# `xmlc serve` drains on SIGTERM (deploy/README.md, "Stopping a replica").
# numba opens its cache only in a writable folder: the kernels compiled at build are copied to /tmp (a
# tmpfs or emptyDir under a read-only root) before the server starts; `exec` leaves it PID 1.
ENTRYPOINT ["/bin/sh", "-c", "mkdir -p \"$NUMBA_CACHE_DIR\" && cp -a /opt/numba-cache/. \"$NUMBA_CACHE_DIR\"/; exec \"$@\"", "xmlc-serve"]
CMD ["xmlc", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------------------
# trainer: offline training, `xmlc` as entrypoint. torch (CPU build) is installed first and pinned: a
# torch wheel put in deploy/wheels/ (where download.pytorch.org cannot be reached), else from
# TORCH_INDEX_URL. After the serving stages, so that the classic builder skips it for `--target serve`.
#   docker run --rm -v "$PWD/data:/data:ro" -v "$PWD/bundles:/bundles" xmlc-train \
#       train --train /data/train.jsonl.gz --labels /data/labels.jsonl.gz --out /bundles/v2
FROM builder AS trainer-build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY deploy/wheels/ /tmp/wheels/
RUN if [ -s /tmp/certs/pip-ca.crt ]; then export PIP_CERT=/tmp/certs/pip-ca.crt; fi \
    && if ls /tmp/wheels/torch-2.13.0*.whl >/dev/null 2>&1; then pip install /tmp/wheels/torch-2.13.0*.whl; \
       else pip install --extra-index-url "${TORCH_INDEX_URL}" "torch==2.13.0"; fi \
    && pip install ".[train,distributed]"

FROM ${BASE_IMAGE} AS trainer
COPY --from=trainer-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 xmlc \
    && useradd --system --uid 10001 --gid 10001 --home-dir /work --create-home xmlc
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["xmlc"]
CMD ["--help"]

# The default target (`docker build .` with BuildKit builds only what it needs): the serving image.
FROM serve
