# syntax=docker/dockerfile:1
#
# xmlc-serve images.
#   serving (default, last stage):  docker build -t xmlc-serve .
#   training:                       docker build --target trainer -t xmlc-train .
#
# The serving image holds the project and its `serve` extra only: no torch, no scikit-learn, no data.
# Bundles are mounted read-only at /models/current (XMLC_BUNDLE).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------------
# builder: wheels for the project and every dependency of its `serve` extra (hnswlib may need a compiler).
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY xmlc ./xmlc
COPY app ./app
COPY training ./training
COPY model_export ./model_export
RUN pip wheel --wheel-dir /wheels ".[serve]"

# ---------------------------------------------------------------------------------------------------------
# trainer: offline training (torch CPU build first and pinned, then the `train` extra); entrypoint `xmlc`.
#   docker run --rm -v "$PWD/data:/data:ro" -v "$PWD/bundles:/bundles" xmlc-train \
#       train --train /data/train.jsonl.gz --labels /data/labels.jsonl.gz --out /bundles/v2
FROM ${PYTHON_IMAGE} AS trainer
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY xmlc ./xmlc
COPY app ./app
COPY training ./training
COPY model_export ./model_export
RUN pip install ".[train]" && rm -rf /src
RUN groupadd --system --gid 10001 xmlc \
    && useradd --system --uid 10001 --gid 10001 --home-dir /work --create-home xmlc
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["xmlc"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------------
# serving (default target): installs the wheels from the builder, nothing else. The wheels are bind-mounted
# for the one RUN (BuildKit: the default of `docker build` since Engine 23, DOCKER_BUILDKIT=1 before), so
# they never land in a layer.
FROM ${PYTHON_IMAGE} AS serve
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    XMLC_BUNDLE=/models/current
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "xmlc-serve[serve]" \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
RUN groupadd --system --gid 10001 xmlc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent xmlc \
    && mkdir -p /models/current /srv/xmlc
# An empty folder, not the source tree: `app` and `xmlc` are imported from site-packages.
WORKDIR /srv/xmlc
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(r.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# One worker per container: replicas scale out behind the gateway, and each process owns its /metrics.
CMD ["uvicorn", "--factory", "app.main:app_from_env", "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
