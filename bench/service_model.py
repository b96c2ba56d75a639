"""The model alone, no HTTP: how many documents a second the bundle answers on this machine.

Why: `bench.bench_service` asks the service for a share of a do-nothing endpoint's requests/s on cache
misses, and every miss needs the model. Timing `Model.predict_batch` on the same documents, in the
service's batch size and with its number of model threads, gives the ceiling that no HTTP layer can beat:
if the model alone answers N documents a second, (b) cannot exceed N requests a second.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from xmlc.doc import Doc
from xmlc.loader import load_model


def docs_of(bodies: list[str]) -> list[Doc]:
    """The documents the service builds from the benchmark's request bodies."""
    out = []
    for body in bodies:
        d = json.loads(body)
        out.append(Doc(d["text"], d.get("title") or ""))
    return out


def model_ceiling(
    bundle: Path, texts: list[Doc], batch_size: int, workers: int, seconds: float, k: int = 5
) -> dict[str, Any]:
    """Documents/s of `Model.predict_batch` in batches of ``batch_size`` on ``workers`` threads.

    The threads take consecutive batches of ``texts`` (cycling) until ``seconds`` have passed; CPU is
    the process's user + system time over the same span (1.00 = one core busy all the time).
    """
    pipeline = load_model(bundle)
    pipeline.warm_up()
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    pipeline.predict_batch(batches[0], k)
    deadline = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    def work() -> int:
        done = 0
        while time.perf_counter() < deadline:
            batch = batches[next(counter) % len(batches)]
            pipeline.predict_batch(batch, k)
            done += len(batch)
        return done

    cpu0, t0 = os.times(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        docs = sum(pool.map(lambda _: work(), range(workers)))
    wall, cpu1 = time.perf_counter() - t0, os.times()
    cores = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
    return {
        "docs_per_s": docs / wall,
        "ms_per_doc": wall / docs * 1e3,
        "batch_size": batch_size,
        "workers": workers,
        "seconds": wall,
        "cores": cores,
    }
