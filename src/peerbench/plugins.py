"""The plugin manager: built-in plugins and third-party entry points go through the same hooks.

Loading is lazy (nothing happens at import time) and runs once per process. A plugin that fails
to import, or raises inside a hook, is recorded in :data:`failures` and reported by
``peerbench plugins``; it never breaks the rest of peerbench.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from peerbench import hookspecs

ENTRY_POINT_GROUP = "peerbench"

DEFAULT_PLUGINS = (
    "peerbench.backends.baseline",
    "peerbench.backends.gemini",
    "peerbench.backends.hf",
    "peerbench.backends.openai_compat",
    "peerbench.backends.replay",
    "peerbench.backends.vllm",
    "peerbench.datasets.aiscientist",
    "peerbench.datasets.hf",
    "peerbench.datasets.jsonl",
    "peerbench.datasets.openreview",
    "peerbench.datasets.peerread",
    "peerbench.labels",
    "peerbench.presets",
    "peerbench.metrics.decision",
    "peerbench.metrics.rating",
    "peerbench.metrics.structure",
    "peerbench.metrics.grounding",
    "peerbench.metrics.similarity",
    "peerbench.task",
)

pm = pluggy.PluginManager("peerbench")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    name: str
    error: str
    stage: str = "import"


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False


failures: list[PluginFailure] = []
_distributions: dict[str, str | None] = {}
_loaded = False


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the chosen entry points (:func:`entry_points`), once per process."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for module_name in DEFAULT_PLUGINS:
        mod = importlib.import_module(module_name)
        if not pm.is_registered(mod):
            pm.register(mod, name=module_name)
    for ep in entry_points():
        if pm.get_plugin(ep.name) is None:
            _load_entry_point(ep)
    return pm


def entry_points() -> list[metadata.EntryPoint]:
    """The installed ``peerbench`` entry points to load.

    ``PEERBENCH_LOAD_PLUGINS=a,b`` names the only ones to load (empty: none). Under pytest
    (``sys._called_from_test``, set by tests/conftest.py) none load unless that variable names
    them, so a plugin pip-installed into the same environment cannot change what a test sees.
    """
    wanted = os.environ.get("PEERBENCH_LOAD_PLUGINS")
    if wanted is None and getattr(sys, "_called_from_test", False):
        return []
    found = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    if wanted is None:
        return found
    allow = {w.strip() for w in wanted.split(",") if w.strip()}
    return [ep for ep in found if ep.name in allow]


def _load_entry_point(ep: metadata.EntryPoint) -> None:
    """Import and register one third-party plugin; a failure is recorded, never raised."""
    try:
        pm.register(ep.load(), name=ep.name)
    except Exception as exc:  # a broken plugin must not break peerbench
        failures.append(PluginFailure(ep.name, one_line(exc)))
        return
    dist = getattr(ep, "dist", None)
    _distributions[ep.name] = dist.version if dist is not None else None


def call_each(hook_name: str, kwargs_for: Callable[[str], dict[str, Any]]) -> None:
    """Call every implementation of a hook on its own, recording the ones that raise.

    ``kwargs_for(plugin_name)`` builds the arguments, so a ``register`` callback knows which
    plugin is registering (needed to name both sides of a name collision).
    """
    load_plugins()
    from peerbench.errors import DuplicateNameError, PeerbenchError

    caller = getattr(pm.hook, hook_name)
    trace = bool(os.environ.get("PEERBENCH_TRACE_PLUGINS"))
    for impl in reversed(caller.get_hookimpls()):
        if trace:
            print(f"peerbench: {hook_name} <- {impl.plugin_name}", file=sys.stderr)
        kwargs = kwargs_for(impl.plugin_name)
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except DuplicateNameError:
            raise
        except PeerbenchError:
            if impl.plugin_name in DEFAULT_PLUGINS:  # a built-in reading the user's own file: tell them now
                raise
            failures.append(PluginFailure(impl.plugin_name, one_line(sys.exc_info()[1]), stage=hook_name))
        except Exception as exc:
            failures.append(PluginFailure(impl.plugin_name, one_line(exc), stage=hook_name))


def plugin_infos() -> list[PluginInfo]:
    load_plugins()
    infos = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        builtin = name in DEFAULT_PLUGINS
        version = None
        if builtin:
            from peerbench import __version__

            version = __version__
        else:
            version = _distributions.get(name)
        infos.append(PluginInfo(name=name, version=version, hooks=hooks, builtin=builtin))
    return infos
