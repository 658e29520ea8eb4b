"""Name -> thing registries, filled once per process from the plugin hooks.

Like lm-evaluation-harness's ``Registry``: collisions are errors that name both plugins, and an
unknown name gets a did-you-mean. Unlike simonw/llm's ``get_model``, the hooks run once and the
result is cached (call :func:`reset` after registering a plugin by hand, as tests do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
    protocols: Registry = field(default_factory=lambda: Registry("protocol"))


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


class Registrar:
    """The ``register`` callbacks that one plugin's hooks receive, one method per hook.

    Each knows which plugin is registering (to name both sides of a collision), and each takes
    exactly the arguments docs/plugins.md documents: a misspelt keyword is the plugin's error,
    reported by ``peerbench plugins``, not silently kept.
    """

    def __init__(self, regs: Registries, plugin: str):
        self.regs, self.plugin = regs, plugin

    def backend(self, name: str, factory: Callable[..., Any], *, extra: str | None = None,
                description: str = "") -> None:
        self.regs.backends.add(name, factory, self.plugin, extra=extra, description=description)

    def dataset(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        self.regs.datasets.add(name, factory, self.plugin, description=description)

    def task(self, task_or_path: Any) -> None:
        from peerbench.task import Task, tasks_from_path

        found = [task_or_path] if isinstance(task_or_path, Task) else tasks_from_path(task_or_path)
        for task in found:
            self.regs.tasks.add(task.task, task, self.plugin, description=task.description)

    def metric(self, metric: Any) -> None:
        self.regs.metrics.add(metric.name, metric, self.plugin, description=metric.description)

    def label_rule(self, rule: Any) -> None:
        self.regs.label_rules.add(rule.name, rule, self.plugin, description=rule.description)

    def protocol(self, name: str, factory: Callable[..., Any], *, description: str = "") -> None:
        self.regs.protocols.add(name, factory, self.plugin, description=description)

    def model(self, name: str, *, backend: str, model: str, options: dict[str, Any] | None = None,
              description: str = "", backends: dict[str, dict[str, Any]] | None = None) -> None:
        preset = {"backend": backend, "model": model, "options": dict(options or {}),
                  "backends": {k: dict(v or {}) for k, v in (backends or {}).items()}}
        self.regs.models.add(name, preset, self.plugin, description=description)


# hook -> the Registrar method its ``register`` argument is, in the order the hooks run.
CALLBACKS = {
    "register_backends": "backend",
    "register_datasets": "dataset",
    "register_metrics": "metric",
    "register_label_rules": "label_rule",
    "register_tasks": "task",
    "register_models": "model",
    "register_protocols": "protocol",
}


def register_callback(hook: str) -> Callable[..., None]:
    """The unbound ``register`` callback a hook receives (the docs test reads its signature)."""
    return getattr(Registrar, CALLBACKS[hook])


def _build() -> Registries:
    from peerbench import plugins

    regs = Registries()
    for hook, method in CALLBACKS.items():
        plugins.call_each(hook, lambda plugin, method=method: {"register": getattr(Registrar(regs, plugin), method)})
    return regs
