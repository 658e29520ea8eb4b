"""Stage 4, dispatch: send what the cache could not serve, handing each completion on the moment it
lands. The harness, not the backend, owns the two policies every backend needs:

- **concurrency**: one semaphore per connection key (``backend.connection_key()``, a server's URL
  for HTTP backends), shared by every run in this process that sends on the same event loop, so
  two runs against one server share its bound instead of doubling it;
- **retries**: a backend with a ``retry_policy()`` gets each request alone, and the one retry
  driver (:mod:`peerbench.pipeline.retry`) retries what its ``classify_error`` calls transient.
  Backends without one (in-process models, baselines, replay) get whole batches, once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from peerbench.errors import BackendError
from peerbench.pipeline.prepare import Item
from peerbench.pipeline.retry import RetryPolicy, complete_with_retries
from peerbench.records import ChatRequest, Completion

OnResult = Callable[[Item, Completion, float, bool], None]  # (item, completion, latency, cached)

# (event loop, connection key) -> semaphore. An asyncio.Semaphore belongs to one loop, hence the
# loop in the key; held weakly, so a finished loop's semaphores go with it.
_SEMAPHORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()
_SEMAPHORES_LOCK = threading.Lock()  # a local sweep runs one event loop per thread


def connection_semaphore(key: str, size: int) -> asyncio.Semaphore:
    """The running loop's semaphore for ``key``. The first run to open a key sizes it; later runs
    on the same key and loop share that bound (a second run against one server adds no slots).
    Runs in other event loops (other threads, e.g. a local sweep's) have bounds of their own."""
    loop = asyncio.get_running_loop()
    with _SEMAPHORES_LOCK:
        per_loop = _SEMAPHORES.setdefault(loop, {})
        if key not in per_loop:
            per_loop[key] = asyncio.Semaphore(max(1, size))
        return per_loop[key]


def split_cached(items: Sequence[Item], cache: Any, on_result: OnResult) -> list[Item]:
    """Hand cached answers on at once; return the items that still need a request."""
    pending = []
    for item in items:
        hit = cache.get(item.key) if cache is not None else None
        if hit is not None:
            on_result(item, Completion.from_dict(hit), 0.0, True)
        else:
            pending.append(item)
    return pending


async def send_batch(backend: Any, requests: Sequence[ChatRequest], semaphore: asyncio.Semaphore,
                     started: list[float] | None = None, on_slot: Callable[[], None] | None = None) -> list[Completion]:
    """One ``generate`` call holding one slot of the connection's bound (the time the slot was
    taken is appended to ``started``, for latencies); a wrong count is the backend's bug."""
    async with semaphore:
        if started is not None:
            started.append(time.perf_counter())
        if on_slot is not None:
            on_slot()
        completions = await backend.generate(list(requests))
    if len(completions) != len(requests):
        raise BackendError(f"backend {backend.name!r} returned {len(completions)} completions "
                           f"for {len(requests)} requests")
    return completions


async def send_retried(backend: Any, request: ChatRequest, semaphore: asyncio.Semaphore,
                       policy: RetryPolicy, on_slot: Callable[[], None] | None = None) -> tuple[Completion, float]:
    """One request through the retry driver: (completion, seconds from the first attempt to the end).
    Each attempt takes a slot and gives it back, so a request waiting out a backoff blocks no other."""
    started: list[float] = []

    async def attempt() -> Completion:
        return (await send_batch(backend, [request], semaphore, started, on_slot))[0]

    completion = await complete_with_retries(attempt, backend.classify_error, max_retries=policy.max_retries,
                                             backoff=policy.backoff)
    return completion, time.perf_counter() - started[0]


async def generate_all(backend: Any, requests: Sequence[ChatRequest],
                       concurrency: int | None = None) -> list[Completion]:
    """Completions for ``requests`` in order, with the harness's retries and bound (``generate_sync``)."""
    semaphore = connection_semaphore(backend.connection_key(), backend.slots(concurrency or backend.max_concurrency))
    policy = backend.retry_policy()
    if policy is not None:
        done = await asyncio.gather(*(send_retried(backend, r, semaphore, policy) for r in requests))
        return [completion for completion, _ in done]
    size = max(1, backend.batch_size)
    batches = await asyncio.gather(*(send_batch(backend, requests[i:i + size], semaphore)
                                     for i in range(0, len(requests), size)))
    return [completion for batch in batches for completion in batch]


async def dispatch(backend: Any, items: Sequence[Item], *, concurrency: int | None, on_result: OnResult,
                   warm_up: Sequence[str] = ()) -> None:
    """Every pending item through the backend, each answer handed on as it lands; the first
    exception (a BackendError, or an error the backend did not classify) cancels what is in flight.
    The modules named in ``warm_up`` are imported meanwhile (see :class:`WarmUp`)."""
    size = backend.slots(concurrency or backend.max_concurrency)  # the bound per connection, times connections
    semaphore = connection_semaphore(backend.connection_key(), size)
    policy = backend.retry_policy()
    batch_size = 1 if policy is not None else max(1, backend.batch_size)
    warm = WarmUp(warm_up, wave=min(size, -(-len(items) // batch_size)))

    async def run_one(item: Item) -> None:
        completion, latency = await send_retried(backend, item.request, semaphore, policy, warm.slot_taken)
        on_result(item, completion, latency, False)

    async def run_batch(batch: Sequence[Item]) -> None:
        started: list[float] = []
        completions = await send_batch(backend, [item.request for item in batch], semaphore, started,
                                       warm.slot_taken)
        latency = (time.perf_counter() - started[0]) / max(1, len(batch))
        for item, completion in zip(batch, completions):
            on_result(item, completion, latency, False)

    if policy is not None:
        jobs = [run_one(item) for item in items]
    else:
        jobs = [run_batch(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    await run_all(jobs)


class WarmUp:
    """Imports, on a thread, what the run needs after its last reply (numpy, the scoring and table
    code: a few hundred ms of CPU that would otherwise sit between the last reply and the exit),
    while the requests wait on the server and the interpreter has nothing else to do.

    It starts ``delay`` seconds after the first wave holds every slot (or every request): a thread
    importing holds the GIL for up to 5 ms at a time (the switch interval), and each of the wave's
    requests, still being written for some tens of ms, would wait that long to go out."""

    def __init__(self, modules: Sequence[str], wave: int, delay: float = 0.1):
        self.modules, self.wave, self.delay, self.taken = tuple(modules), wave, delay, 0
        self.thread: threading.Thread | None = None

    def slot_taken(self) -> None:
        self.taken += 1
        if self.modules and self.taken == self.wave:
            self.thread = threading.Thread(target=self._import, name="peerbench-warm-up")
            asyncio.get_running_loop().call_later(self.delay, self.thread.start)

    def _import(self) -> None:
        import importlib

        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # imported again where it is used, and fails there with its own message
                pass


async def run_all(jobs: Sequence[Any]) -> None:
    """Await every job; the first one to raise cancels the rest."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
