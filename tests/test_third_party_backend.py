"""A backend from outside peerbench, registered through the plugin hook as an installed plugin's would
be, gets the harness's retries, concurrency bound and sweep scheduling exactly like the built-ins:
all of it from the facts it declares (``in_process``, ``gpus()``, ``connection_key()``, its retry
options and ``classify_error``), none of it from its name."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import types
from collections import Counter
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from openai_server import OpenAIChatServer
from pydantic import Field

import peerbench
from peerbench import plugins, registry
from peerbench import Failure
from peerbench.pipeline.plan import plan_run

# ---- the plugin: what a third party would ship ------------------------------------------------


class AcmeError(Exception):
    """A non-200 reply, as the plugin's own client reports it."""

    def __init__(self, status: int, message: str, retry_after: str | None, title: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message, self.retry_after, self.title = status, message, retry_after, title


class AcmeOptions(peerbench.BackendOptions):
    base_url: str = Field(json_schema_extra={"flag": "--base-url"})
    max_retries: int = Field(2, ge=0)
    retry_backoff: float = Field(0.01, ge=0)


class RunProbe:
    """Counts runs whose backend is set up and not yet closed; each new run waits up to ``wait``
    seconds for a second one, so runs that are allowed to overlap certainly do."""

    def __init__(self, wait: float):
        self.wait, self.active, self.peak = wait, 0, 0
        self.lock, self.pair = threading.Lock(), threading.Event()

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            if self.active >= 2:
                self.pair.set()
        self.pair.wait(self.wait)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


class AcmeBackend(peerbench.Backend):
    """Talks to an OpenAI-style server with its own HTTP client; retries nothing itself."""

    name = "acme"
    Options = AcmeOptions
    in_process = False
    max_concurrency = 4
    classified: ClassVar[Counter] = Counter()  # (title, status) -> times classify_error saw it
    probe: ClassVar[RunProbe | None] = None
    in_flight: ClassVar[list[int]] = [0, 0]  # [now, peak] over every instance

    def connection_key(self) -> str:
        return self.options.base_url

    async def setup(self, context: Any = None) -> None:
        if type(self).probe is not None:
            type(self).probe.enter()

    async def aclose(self) -> None:
        if type(self).probe is not None:
            type(self).probe.leave()

    async def generate(self, requests: list[peerbench.ChatRequest]) -> list[peerbench.Completion]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return [await self._one(client, request) for request in requests]

    async def _one(self, client: httpx.AsyncClient, request: peerbench.ChatRequest) -> peerbench.Completion:
        flight = AcmeBackend.in_flight
        flight[0] += 1
        flight[1] = max(flight[1], flight[0])
        try:
            reply = await client.post(f"{self.options.base_url}/chat/completions",
                                      json={"model": self.model, "messages": request.messages})
        finally:
            flight[0] -= 1
        title = request.user_text.split("Title: ", 1)[-1].split("\n", 1)[0]
        if reply.status_code != 200:
            raise AcmeError(reply.status_code, reply.json()["error"]["message"], reply.headers.get("retry-after"),
                            title)
        return peerbench.Completion(text=reply.json()["choices"][0]["message"]["content"])

    def classify_error(self, exc: Exception) -> Failure:
        if not isinstance(exc, AcmeError):
            raise exc
        AcmeBackend.classified[(exc.title, exc.status)] += 1
        if exc.status == 401:
            raise peerbench.BackendError(f"acme: refused ({exc})")
        retry_after = float(exc.retry_after) if exc.retry_after else None
        return Failure(str(exc), exc.status in (429, 500, 503), retry_after)


class AcmeLocalBackend(AcmeBackend):
    """The same client, declared as holding a model in this process and needing two GPUs."""

    name = "acme-local"
    in_process = True
    probe: ClassVar[RunProbe | None] = None

    def gpus(self) -> float:
        return 2.0


class AcmePlugin:
    @peerbench.hookimpl
    def register_backends(self, register):
        register("acme", AcmeBackend, description="a third-party HTTP backend")
        register("acme-local", AcmeLocalBackend, description="a third-party in-process backend")


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def acme():
    """The plugin registered for one test, as tests/test_plugins.py registers inline plugins."""
    plugins.load_plugins()
    plugins.pm.register(AcmePlugin(), name="acme-plugin")
    registry.reset()
    AcmeBackend.classified.clear()
    AcmeBackend.in_flight[:] = [0, 0]
    try:
        yield
    finally:
        plugins.pm.unregister(name="acme-plugin")
        registry.reset()


def unique_titles(peerread_root) -> list[str]:
    plan = plan_run("peerread95", "baseline", data_dir=peerread_root)
    titles = Counter(p.title for p in plan.dataset.load(plan.dataset_args, progress=False))
    return sorted(t for t, n in titles.items() if n == 1)


def chat(title: str) -> peerbench.ChatRequest:
    """A request whose prompt names a title, which the test server's fault script keys on."""
    messages = [{"role": "user", "content": f"Title: {title}\n"}]
    return peerbench.ChatRequest(title, messages, peerbench.GenerationConfig())


def samples_by_title(run_dir) -> dict[str, dict]:
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return {s["title"]: s for s in samples}


# ---- retries ------------------------------------------------------------------------------------


def test_the_harness_retries_what_the_plugin_classifies_as_transient(acme, peerread_root, tmp_path):
    titles = unique_titles(peerread_root)
    once_500, once_429, always_500, always_400 = titles[:4]

    def script(title, attempt):
        if title == always_500:
            return "500"
        if title == always_400:
            return "400"
        return {once_500: "500", once_429: "429"}.get(title) if attempt == 1 else None

    with OpenAIChatServer(script=script) as server:
        result = peerbench.run("peerread95", "acme", server.model, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options={"base_url": server.base_url}, resamples=10)
        attempts = dict(server.attempts)
    by_title = samples_by_title(tmp_path / "run")
    assert len(by_title) == 95
    for title in (once_500, once_429):  # transient: tried again, then answered
        assert by_title[title]["error"] is None and by_title[title]["extra"]["attempts"] == 2, title
    assert by_title[always_500]["error"] == "HTTP 500: internal error (gave up after 3 tries)"
    assert by_title[always_500]["extra"]["attempts"] == 3 and attempts[always_500] == 3  # max_retries=2
    assert by_title[always_400]["error"] == ("HTTP 400: This model's maximum context length is 12288 tokens. "
                                             "However, you requested 13000 tokens.")
    assert by_title[always_400]["extra"]["attempts"] == 1 and attempts[always_400] == 1  # final: never retried
    assert AcmeBackend.classified == Counter({(once_500, 500): 1, (once_429, 429): 1, (always_500, 500): 3,
                                              (always_400, 400): 1})
    assert (result.metrics["n_failed"], result.metrics["complete"]) == (2, False)
    assert sum(attempts.values()) == 93 + 2 + 3 + 1


def test_a_rate_limit_waits_the_servers_retry_after_and_other_retries_the_backoff(acme):
    script = {"Slow down": "429", "Oops": "500"}
    with OpenAIChatServer(script=lambda title, attempt: script[title] if attempt == 1 else None) as server:
        backend = peerbench.get_backend("acme", server.model, base_url=server.base_url)  # retry_backoff 0.01
        requests = [chat(title) for title in script]
        completions = backend.generate_sync(requests)
        gaps = {title: times[1] - times[0] for title, times in server.arrivals.items()}
    assert [(c.error, c.extra["attempts"]) for c in completions] == [(None, 2), (None, 2)]
    assert gaps["Slow down"] >= 0.2  # the 429's Retry-After: 0.2
    assert gaps["Oops"] < 0.2  # a 500 has no Retry-After: the 0.01 s backoff (with jitter), not the 0.2


def test_the_retry_policy_comes_from_the_plugins_options(acme):
    with OpenAIChatServer(script=lambda title, attempt: "500") as server:
        backend = peerbench.get_backend("acme", server.model, base_url=server.base_url, max_retries=0)
        assert backend.retry_policy().max_retries == 0
        [completion] = backend.generate_sync([chat("One paper")])  # notebooks get the harness's retries too
        assert server.attempts["One paper"] == 1
    assert completion.error == "HTTP 500: internal error (gave up after 1 try)"
    assert completion.extra == {"attempts": 1}


def test_a_fatal_error_ends_the_run_and_is_never_retried(acme, peerread_root, tmp_path):
    with OpenAIChatServer(script=lambda title, attempt: "401") as server:
        with pytest.raises(peerbench.BackendError, match=r"^acme: refused \(HTTP 401: Incorrect API key provided\)$"):
            peerbench.run("peerread95", "acme", server.model, data_dir=peerread_root, out=tmp_path / "run",
                          backend_options={"base_url": server.base_url})
        attempts = dict(server.attempts)
    assert attempts and set(attempts.values()) == {1}
    assert {status for _, status in AcmeBackend.classified} == {401}


def test_an_error_the_plugin_does_not_classify_is_a_bug_not_a_retry(acme, peerread_root, tmp_path):
    with OpenAIChatServer(script=lambda title, attempt: "malformed") as server:
        with pytest.raises(json.JSONDecodeError):
            peerbench.run("peerread95", "acme", server.model, data_dir=peerread_root, out=tmp_path / "run",
                          backend_options={"base_url": server.base_url})
        attempts = dict(server.attempts)
    assert attempts and set(attempts.values()) == {1} and not AcmeBackend.classified


def test_option_errors_name_the_flag_declared_in_the_options_metadata(acme):
    with pytest.raises(peerbench.ConfigError, match=r"^--base-url: Input should be a valid string "
                                                    r"\(backend 'acme' takes: base_url, max_retries, retry_backoff\)$"):
        peerbench.get_backend("acme", "m", base_url=5)
    with pytest.raises(peerbench.ConfigError,
                       match=r"^--backend-arg max_retries: Input should be greater than or equal to 0"):
        peerbench.get_backend("acme", "m", base_url="http://x", max_retries=-1)


# ---- concurrency: one bound per connection key --------------------------------------------------


def _items(prefix: str, n: int) -> list[Any]:
    return [types.SimpleNamespace(request=chat(f"{prefix}{i}")) for i in range(n)]


def _two_runs_at_once(first, second) -> list[str]:
    from peerbench.pipeline.dispatch import dispatch

    landed: list[str] = []

    def on_result(item, completion, latency, cached) -> None:
        landed.append(completion.error or "ok")

    async def both() -> None:
        await asyncio.gather(dispatch(first, _items("a", 6), concurrency=2, on_result=on_result),
                             dispatch(second, _items("b", 6), concurrency=2, on_result=on_result))

    asyncio.run(both())
    return landed


def test_two_runs_against_one_server_share_its_bound(acme):
    with OpenAIChatServer(latency=0.15) as one, OpenAIChatServer(latency=0.15) as other:
        same = [peerbench.get_backend("acme", one.model, base_url=one.base_url) for _ in range(2)]
        assert _two_runs_at_once(*same) == ["ok"] * 12
        assert AcmeBackend.in_flight[1] == 2 and one.max_in_flight == 2  # one key: 2 slots, not 2 + 2
        AcmeBackend.in_flight[:] = [0, 0]
        apart = [peerbench.get_backend("acme", s.model, base_url=s.base_url) for s in (one, other)]
        assert _two_runs_at_once(*apart) == ["ok"] * 12
        assert AcmeBackend.in_flight[1] == 4  # two keys: a bound each


# ---- sweep: scheduled by declared facts ---------------------------------------------------------


def write_spec(path, data_dir, server, **model_extra) -> Any:
    options = {"base_url": server.base_url}
    models = [{"name": "http", "backend": "acme", "model": server.model, "options": options},
              {"name": "local", "backend": "acme-local", "model": server.model, "options": options, **model_extra}]
    path.write_text(yaml.safe_dump({"name": "third-party", "models": models, "data_dir": str(data_dir), "limit": 3,
                                    "tasks": ["peerread-conll2016", "peerread-acl2017"]}))
    return path


def test_a_local_sweep_overlaps_io_runs_and_serialises_in_process_ones(acme, peerread_root, tmp_path, monkeypatch):
    from peerbench.pipeline.sweep import sweep

    monkeypatch.setattr(AcmeBackend, "probe", RunProbe(wait=20.0))
    monkeypatch.setattr(AcmeLocalBackend, "probe", RunProbe(wait=0.5))
    with OpenAIChatServer() as server:
        summary = sweep(write_spec(tmp_path / "sweep.yaml", peerread_root, server), out=tmp_path / "s",
                        max_parallel=4, progress=False)
    runs = {r["name"]: r for r in summary["runs"]}
    assert sorted(runs) == ["peerread-acl2017__http", "peerread-acl2017__local", "peerread-conll2016__http",
                            "peerread-conll2016__local"]
    assert all(r.get("error") is None and r["n"] == 3 for r in runs.values()), runs
    assert AcmeBackend.probe.peak == 2  # in_process = False: both runs at once
    assert AcmeLocalBackend.probe.peak == 1  # in_process = True: one after the other


class FakeRay:
    """Just enough of Ray for run_ray: records the resources each run asks for, runs nothing."""

    def __init__(self, cluster_gpus: float):
        self.cluster_gpus, self.asked = cluster_gpus, {}

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return {"GPU": self.cluster_gpus} if self.cluster_gpus else {}

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **kwargs):
                ray.asked[kwargs["name"]] = kwargs["num_gpus"]
                return types.SimpleNamespace(remote=lambda entry: entry["name"])

        return Remote()

    def wait(self, refs, num_returns=1):
        return refs[:1], refs[1:]

    def get(self, ref):
        return {"name": ref, "task": ref.split("__")[0], "complete": True}


@pytest.mark.parametrize("model_extra, cluster_gpus, expected", [
    ({}, 8, {"http": 0.0, "local": 2.0}),  # from gpus(): 0 by default, 2 declared
    ({"gpus": 0.25}, 8, {"http": 0.0, "local": 0.25}),  # a model entry's gpus: overrides
    ({}, 0, {"http": 0.0, "local": 0.0}),  # a cluster without GPUs: no reservation
])
def test_ray_reserves_the_gpus_the_backend_declares(acme, peerread_root, tmp_path, monkeypatch, model_extra,
                                                    cluster_gpus, expected):
    from peerbench.pipeline.sweep import sweep

    fake = FakeRay(cluster_gpus)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with OpenAIChatServer() as server:
        sweep(write_spec(tmp_path / "sweep.yaml", peerread_root, server, **model_extra), out=tmp_path / "s",
              executor="ray", progress=False)
    assert fake.asked == {f"{task}__{name}": gpus for task in ("peerread-conll2016", "peerread-acl2017")
                          for name, gpus in expected.items()}


class RegionOptions(peerbench.BackendOptions):
    region: str = Field("eu", description="where the service runs", json_schema_extra={"flag": "--region"})


class RegionBackend(peerbench.Backend):
    name = "regional"
    Options = RegionOptions
    in_process = False

    async def generate(self, requests):
        return [peerbench.Completion(text=f"{self.options.region}: {peerbench.decision_line(True)}")
                for _ in requests]


class RegionPlugin:
    @peerbench.hookimpl
    def register_backends(self, register):
        register("regional", RegionBackend, description="a backend with a flag of its own")


def test_a_plugin_backend_gets_its_own_flag_on_run_from_its_options_metadata(peerread_root, tmp_path):
    from click.testing import CliRunner

    from peerbench.cli import build_cli

    plugins.load_plugins()
    plugins.pm.register(RegionPlugin(), name="region-plugin")
    registry.reset()
    try:
        cli = build_cli()
        shown = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())  # unwrapped
        assert "--region VALUE where the service runs; sets option 'region' of backend: regional." in shown
        done = CliRunner().invoke(cli, ["run", "--backend", "regional", "--model", "m", "--region", "mars",
                                        "--task", "peerread-conll2016", "--data-dir", str(peerread_root),
                                        "--out", str(tmp_path / "run"), "--json", "-q", "--resamples", "10"])
        assert done.exit_code == 0, done.output
        samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
        assert {s["completion"].split(":")[0] for s in samples} == {"mars"}
        assert json.loads((tmp_path / "run" / "config.json").read_text())["options"]["region"] == "mars"
    finally:
        plugins.pm.unregister(name="region-plugin")
        registry.reset()
