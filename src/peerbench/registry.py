"""Name -> thing registries, filled once per process from the plugin hooks.

Like lm-evaluation-harness's ``Registry``: collisions are errors that name both plugins, and an
unknown name gets a did-you-mean. Unlike simonw/llm's ``get_model``, the hooks run once and the
result is cached (call :func:`reset` after registering a plugin by hand, as tests do).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from peerbench.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    value: T
    plugin: str
    extra: str | None = None
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, value: T, plugin: str, **meta: Any) -> None:
        if not isinstance(name, str) or not name:
            raise DuplicateNameError(f"plugin {plugin!r} registered a {self.kind} with an empty name")
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered by both {first!r} and {plugin!r}; "
                f"uninstall one of them or set PEERBENCH_LOAD_PLUGINS"
            )
        extra = meta.pop("extra", None)
        description = meta.pop("description", "")
        self._entries[name] = Entry(name, value, plugin, extra, description, meta)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]


@dataclass
class Registries:
    backends: Registry = field(default_factory=lambda: Registry("backend"))
    datasets: Registry = field(default_factory=lambda: Registry("dataset"))
    tasks: Registry = field(default_factory=lambda: Registry("task"))
    metrics: Registry = field(default_factory=lambda: Registry("metric"))
    label_rules: Registry = field(default_factory=lambda: Registry("label rule"))
    models: Registry = field(default_factory=lambda: Registry("model preset"))


_lock = threading.RLock()
_cached: Registries | None = None


def registries() -> Registries:
    """Run every ``register_*`` hook once and return the filled registries."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = _build()
        return _cached


def reset() -> None:
    global _cached
    with _lock:
        _cached = None


def _build() -> Registries:
    from peerbench import plugins
    from peerbench.task import Task, tasks_from_path

    regs = Registries()

    def simple(registry: Registry):
        def kwargs_for(plugin: str) -> dict[str, Any]:
            def register(name: str, value: Any, **meta: Any) -> None:
                registry.add(name, value, plugin, **meta)

            return {"register": register}

        return kwargs_for

    def named(registry: Registry):
        def kwargs_for(plugin: str) -> dict[str, Any]:
            def register(obj: Any, **meta: Any) -> None:
                registry.add(obj.name, obj, plugin, description=getattr(obj, "description", ""), **meta)

            return {"register": register}

        return kwargs_for

    def task_kwargs(plugin: str) -> dict[str, Any]:
        def register(obj: Any) -> None:
            found = [obj] if isinstance(obj, Task) else tasks_from_path(obj)
            for task in found:
                regs.tasks.add(task.task, task, plugin, description=task.description)

        return {"register": register}

    def model_kwargs(plugin: str) -> dict[str, Any]:
        def register(name: str, *, backend: str, model: str, options: dict | None = None, description: str = "",
                     backends: dict[str, dict] | None = None) -> None:
            preset = {"backend": backend, "model": model, "options": dict(options or {}),
                      "backends": {k: dict(v or {}) for k, v in (backends or {}).items()}}
            regs.models.add(name, preset, plugin, description=description)

        return {"register": register}

    plugins.call_each("register_backends", simple(regs.backends))
    plugins.call_each("register_datasets", simple(regs.datasets))
    plugins.call_each("register_metrics", named(regs.metrics))
    plugins.call_each("register_label_rules", named(regs.label_rules))
    plugins.call_each("register_tasks", task_kwargs)
    plugins.call_each("register_models", model_kwargs)
    return regs
