"""While the requests wait on the server, dispatch imports what scoring needs afterwards, on a
thread started only once the first wave holds every slot (so that wave is not slowed down)."""

from __future__ import annotations

import asyncio
import sys
import time
import types

import pytest

import peerbench
from peerbench.pipeline.dispatch import WarmUp, dispatch

pytestmark = pytest.mark.fast


class SlowBackend(peerbench.Backend):
    """Answers each request after 0.15 s, noting when each one started."""

    name = "slow-test"
    max_concurrency = 3

    def __init__(self, model: str | None = "m", **options):
        super().__init__(model, **options)
        self.started: list[float] = []

    async def generate(self, requests):
        self.started.extend(time.monotonic() for _ in requests)
        await asyncio.sleep(0.15)
        return [peerbench.Completion(text="I recommend this paper for ACCEPTANCE.") for _ in requests]


def items(n: int):
    messages = [{"role": "user", "content": "Title: t\n"}]
    return [types.SimpleNamespace(request=peerbench.ChatRequest(f"p{i}", messages, peerbench.GenerationConfig()))
            for i in range(n)]


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    """A module that notes when, and on which thread, it was imported."""
    name = f"warm_probe_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text("import threading, time\nAT = time.monotonic()\n"
                                         "THREAD = threading.current_thread().name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_the_modules_are_imported_on_a_thread_after_the_first_wave_is_out(probe_module):
    backend = SlowBackend()
    landed = []
    asyncio.run(dispatch(backend, items(7), concurrency=3, on_result=lambda *args: landed.append(args),
                         warm_up=[probe_module, "no_such_module_anywhere"]))
    module = sys.modules[probe_module]
    assert len(landed) == 7 and module.THREAD == "peerbench-warm-up"
    first_wave, second_wave = sorted(backend.started)[:3], sorted(backend.started)[3:6]
    # 0.1 s after the 3 slots were taken, before the first reply lets the next wave go
    assert max(first_wave) + 0.1 <= module.AT < min(second_wave)


def test_a_run_smaller_than_the_bound_warms_up_once_every_request_is_out():
    imported = []

    async def take_slots() -> WarmUp:
        warm = WarmUp(["json"], wave=2, delay=0.0)
        warm._import = lambda: imported.append(True)
        warm.slot_taken()
        assert warm.thread is None
        warm.slot_taken()
        thread = warm.thread
        warm.slot_taken()  # a retry takes a slot again: no second warm-up
        await asyncio.sleep(0.01)  # the delay: started from the event loop
        assert warm.thread is thread
        return warm

    asyncio.run(take_slots()).thread.join()
    assert imported == [True]
