"""The hooks a peerbench plugin can implement.

Each hook receives a ``register`` callback (simonw/llm style) rather than returning values, so a
plugin can register several things and peerbench knows which plugin registered which name.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("peerbench")
hookimpl = pluggy.HookimplMarker("peerbench")


@hookspec
def register_backends(register):
    """Register backends: ``register(name, factory, *, extra=None, description="")``."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, factory, *, description="")``."""


@hookspec
def register_tasks(register):
    """Register tasks: ``register(task_or_path)``, a ``Task`` or a task YAML file or folder."""


@hookspec
def register_metrics(register):
    """Register metrics: ``register(metric)``, a ``peerbench.Metric`` or a ``peerbench.ReviewMeasure``."""


@hookspec
def register_label_rules(register):
    """Register gold label rules: ``register(rule)``, a ``peerbench.LabelRule``."""


@hookspec
def register_models(register):
    """Register model presets: ``register(name, *, backend, model, options=None, description="", backends=None)``.

    ``backends`` names other backends that can run the same model, each with its own options
    (a merged student runs on both ``hf`` and ``vllm``)."""


@hookspec
def register_commands(cli):
    """Add subcommands to the ``peerbench`` click group."""
