"""Data parallelism over servers: one run's requests spread over several replicas of one model.

``--base-url`` given more than once (or a list of ``base_url`` in a sweep entry) makes one backend
per URL, each with its own in-flight bound (``--concurrency``, per replica), behind one
:class:`Replicas` that the pipeline sees as a single backend: one run identity, one response-cache
key per request whichever replica answers it, one run directory.

Each request goes to the live replica with the fewest requests in flight. A replica that refuses
connections is taken out at once and the request goes to another; one that answers 5xx
``STRIKES_OUT`` times in a row (with no success between) is taken out too, and the failed request
takes the harness's usual retry, on another replica. When every replica is out, the run stops
(BackendError), its answers kept: the same command resumes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from peerbench.backends import Backend, RunContext
from peerbench.errors import BackendError, ConfigError
from peerbench.records import ChatRequest, Completion

STRIKES_OUT = 5  # consecutive 5xx answers that take a replica out


class _Replica:
    def __init__(self, url: str, backend: Backend):
        self.url, self.backend = url, backend
        self.in_flight = self.strikes = 0
        self.out: str | None = None  # why it was taken out


def refused(exc: BaseException) -> bool:
    """A connection that could not be made (nothing listens there any more), in the exception or
    its causes; a timeout or a dropped reply is not one."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or type(seen).__name__ in ("ConnectError",
                                                                                "ClientConnectorError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Replicas(Backend):
    """Several instances of one backend class, one per server URL, behind one backend."""

    def __init__(self, backends: list[Backend], urls: list[str]):  # noqa: super().__init__ would validate options
        first = backends[0]
        self.name, self.model, self.options, self.Options = first.name, first.model, first.options, first.Options
        self.supports_logprobs, self.cacheable = first.supports_logprobs, first.cacheable
        self.batch_size, self.max_concurrency = first.batch_size, first.max_concurrency
        self.operational_options, self.in_process = first.operational_options, first.in_process
        self.replicas = [_Replica(url, backend) for url, backend in zip(urls, backends)]
        self.per_replica = first.max_concurrency
        self._freed: asyncio.Condition | None = None

    @classmethod
    def create(cls, name: str, model: str | None, options: dict[str, Any], urls: list[str]) -> Replicas:
        from peerbench.backends import create_backend

        if len(set(urls)) != len(urls):
            raise ConfigError(f"--base-url: {', '.join(urls)}: a server is named twice")
        backends = [create_backend(name, model, {**options, "base_url": url}) for url in urls]
        return cls(backends, [backend.options.base_url for backend in backends])

    @property
    def decision_parser(self) -> str:  # type: ignore[override]
        return self.replicas[0].backend.decision_parser

    @decision_parser.setter
    def decision_parser(self, parser: str) -> None:
        for replica in self.replicas:
            replica.backend.decision_parser = parser

    def describe(self) -> dict[str, Any]:
        described = self.replicas[0].backend.describe()
        return {**described, "options": {**described["options"], "base_url": [r.url for r in self.replicas]}}

    def identity(self) -> dict[str, Any]:
        """The first replica's identity with every server's URL: a request's cache key is the same
        whichever replica sends it."""
        identity = self.replicas[0].backend.identity()
        return {**identity, "options": {**identity["options"], "base_url": [r.url for r in self.replicas]}}

    def connection_key(self) -> str:
        return "replicas:" + "|".join(r.url for r in self.replicas)

    @property
    def supports_choices(self) -> bool:  # a protocol's n choices of one request, as the replicas take them
        return bool(getattr(self.replicas[0].backend, "supports_choices", False))

    def slots(self, per_connection: int) -> int:
        """``per_connection`` in flight on each replica: the bound the harness puts on them together."""
        self.per_replica = per_connection
        return per_connection * len(self.replicas)

    def retry_policy(self):
        return self.replicas[0].backend.retry_policy()

    def classify_error(self, exc: Exception):
        return self.replicas[0].backend.classify_error(exc)

    def token_counter(self):
        return self.replicas[0].backend.token_counter()

    async def setup(self, context: RunContext) -> None:
        """Set up every replica; one that cannot be reached is taken out (said on stderr)."""
        from peerbench.pipeline.store import warn

        problems = []
        for replica in self.replicas:
            try:
                await replica.backend.setup(context)
            except BackendError as exc:
                replica.out = str(exc)
                problems.append(exc)
                warn(f"replica {replica.url} taken out: {exc}")
        if all(r.out for r in self.replicas):
            raise problems[0]

    def live(self) -> list[_Replica]:
        return [r for r in self.replicas if r.out is None]

    async def _take(self) -> _Replica:
        """The live replica with the fewest requests in flight, waiting for a free slot."""
        if self._freed is None:
            self._freed = asyncio.Condition()
        async with self._freed:
            while True:
                live = self.live()
                if not live:
                    raise BackendError("every replica is out: " + "; ".join(f"{r.url}: {r.out}" for r in self.replicas))
                chosen = min(live, key=lambda r: r.in_flight)
                if chosen.in_flight < self.per_replica:
                    chosen.in_flight += 1
                    return chosen
                await self._freed.wait()

    async def _give_back(self, replica: _Replica) -> None:
        assert self._freed is not None
        async with self._freed:
            replica.in_flight -= 1
            self._freed.notify_all()

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        while True:
            replica = await self._take()
            try:
                completions = await replica.backend.generate(requests)
                replica.strikes = 0
                return completions
            except BackendError:
                raise
            except Exception as exc:
                if refused(exc):  # nothing listens there: out, and the request goes to another replica
                    self._take_out(replica, f"connection refused ({type(exc).__name__})")
                    continue
                if (getattr(exc, "status_code", None) or 0) >= 500:
                    replica.strikes += 1
                    if replica.strikes >= STRIKES_OUT:
                        self._take_out(replica, f"{replica.strikes} answers in a row were HTTP 5xx")
                raise  # the harness judges it and retries, on the least busy live replica
            finally:
                await self._give_back(replica)

    def _take_out(self, replica: _Replica, why: str) -> None:
        from peerbench.pipeline.store import warn

        if replica.out is None:
            replica.out = why
            warn(f"replica {replica.url} taken out: {why}; its requests go to the "
                 f"{len(self.live())} other(s)")

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.backend.aclose()
