"""Stage 4, dispatch: send what the cache could not serve, in the backend's batches, with at most
``concurrency`` batches in flight, handing each completion on the moment it lands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from peerbench.errors import BackendError
from peerbench.pipeline.prepare import Item
from peerbench.records import Completion

OnResult = Callable[[Item, Completion, float, bool], None]  # (item, completion, latency, cached)


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


async def dispatch(backend: Any, items: Sequence[Item], *, concurrency: int | None, on_result: OnResult) -> None:
    """Every pending item through ``backend.generate``; the first exception cancels what is in flight."""
    semaphore = asyncio.Semaphore(max(1, concurrency or backend.max_concurrency))
    size = max(1, backend.batch_size)
    batches = [items[i:i + size] for i in range(0, len(items), size)]

    async def run_batch(batch: Sequence[Item]) -> None:
        async with semaphore:
            started = time.perf_counter()
            completions = await backend.generate([item.request for item in batch])
            latency = (time.perf_counter() - started) / max(1, len(batch))
        if len(completions) != len(batch):
            raise BackendError(f"backend {backend.name!r} returned {len(completions)} completions "
                               f"for {len(batch)} requests")
        for item, completion in zip(batch, completions):
            on_result(item, completion, latency, False)

    tasks = [asyncio.ensure_future(run_batch(batch)) for batch in batches]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        for task in tasks:
            task.cancel()
