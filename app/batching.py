"""Micro-batching with back-pressure: concurrent requests share one model call, off the event loop.

Requests put their documents on a bounded queue; one collector takes up to ``max_size`` documents
(waiting at most ``max_wait_s`` for more once the first arrived), runs the model in a worker thread and
hands each request its rows. Up to ``workers`` model calls run at once: the model's numpy, scipy and
onnxruntime work releases the GIL, so two calls use two cores (the EURLEX57K bundles answer 1.6x the
documents/s of one call at a time, BENCHMARKS.md; a model that is mostly Python would gain nothing).
The queue is bounded in documents and in requests (many one-document requests cost event-loop work
and memory a document count does not show); a full queue raises `Overloaded`, which the API answers
with 429 and a ``Retry-After`` of the seconds the queue needs to drain at the documents/s the model
has been answering. A request carries a deadline: one still queued when it passes is dropped before the
model sees it, and its caller gets `DeadlineExceeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from xmlc.doc import Doc


class Overloaded(Exception):
    """The queue is full: the caller should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(Exception):
    """The request's deadline passed before the model got to it: it was shed, not computed."""


@dataclass
class _Job:
    docs: list[Doc]
    k: int
    future: asyncio.Future[Any]
    deadline: float  # event-loop time
    results: list[Any] = field(default_factory=list)


class MicroBatcher:
    """``run(docs, k)`` is called with the documents of several requests and returns one result each."""

    def __init__(
        self,
        run: Callable[[list[Doc], int], list[Any]],
        max_size: int,
        max_wait_s: float,
        queue_max: int,
        on_depth: Callable[[int], None] | None = None,
        workers: int = 1,
        max_requests: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.max_requests = max_requests if max_requests is not None else queue_max
        self.run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.queue_max = queue_max
        self.on_depth = on_depth or (lambda n: None)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._pending_docs = 0
        self._pending_requests = 0
        self._docs_per_s = 0.0  # moving average of the model's answer rate (0: not measured yet)
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xmlc-model")
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="xmlc-batcher")

    async def stop(self) -> None:
        for task in [*([self._task] if self._task else []), *self._calls]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, docs: list[Doc], k: int, budget_s: float = float("inf")) -> list[Any]:
        """One result per document; `Overloaded` when the queue is full, `DeadlineExceeded` when the
        answer would come after ``budget_s`` seconds (the job is then dropped unless already running)."""
        if self._pending_docs + len(docs) > self.queue_max or self._pending_requests >= self.max_requests:
            raise Overloaded(
                f"{self._pending_docs} documents of {self._pending_requests} requests already waiting",
                self.retry_after_s(),
            )
        loop = asyncio.get_running_loop()
        job = _Job(docs, k, loop.create_future(), loop.time() + budget_s)
        self._add(job, 1)
        self._queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), budget_s if budget_s < 1e9 else None)
        except TimeoutError as e:
            job.future.cancel()  # still queued: dropped when collected; running: its answer is discarded
            raise DeadlineExceeded(f"no answer within {budget_s:.1f} s") from e

    def retry_after_s(self) -> int:
        """Whole seconds the waiting documents need at the measured rate (at least 1)."""
        if self._docs_per_s <= 0:
            return 1
        return max(1, math.ceil(self._pending_docs / self._docs_per_s))

    def _add(self, job: _Job, sign: int) -> None:
        """Count ``job`` into (``sign`` 1) or out of (-1) the queue's documents and requests."""
        self._pending_docs += sign * len(job.docs)
        self._pending_requests += sign
        self.on_depth(self._pending_docs)

    def _measured(self, n_docs: int, seconds: float) -> None:
        """Fold one model call into the answer rate (all workers together: calls overlap)."""
        rate = self.workers * n_docs / max(seconds, 1e-6)
        self._docs_per_s = rate if self._docs_per_s <= 0 else 0.8 * self._docs_per_s + 0.2 * rate

    def _live(self, job: _Job) -> bool:
        """Whether ``job`` is still worth computing; a job past its deadline is dropped here."""
        if job.deadline >= asyncio.get_running_loop().time() and not job.future.done():
            return True
        if not job.future.done():
            job.future.set_exception(DeadlineExceeded("shed: its deadline passed while it waited"))
        self._add(job, -1)
        return False

    async def _collect(self) -> list[_Job]:
        job = await self._queue.get()
        while not self._live(job):
            job = await self._queue.get()
        jobs = [job]
        size = len(job.docs)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if not self._live(job):
                continue
            jobs.append(job)
            size += len(job.docs)
        return jobs

    async def _loop(self) -> None:
        free = asyncio.Semaphore(self.workers)
        while True:
            await free.acquire()  # a worker is free: the next batch collects while the others run
            jobs = await self._collect()
            call = asyncio.get_running_loop().create_task(self._call(jobs))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)
            call.add_done_callback(lambda _: free.release())

    async def _call(self, jobs: list[_Job]) -> None:
        docs = [d for job in jobs for d in job.docs]
        k = max(job.k for job in jobs)
        t0 = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, docs, k)
            self._measured(len(docs), time.perf_counter() - t0)
        except Exception as e:  # the model failed: every waiting request gets the error
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)
        else:
            start = 0
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(results[start : start + len(job.docs)])
                start += len(job.docs)
        finally:
            for job in jobs:
                self._add(job, -1)
