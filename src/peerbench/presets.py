"""Model presets the user registered (``peerbench distill register`` writes them): a name for a
model path plus the backend and options to run it with, kept in ``models.yaml`` in peerbench's
config folder (``$PEERBENCH_HOME`` if set, else the platform's user config dir)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError
from peerbench.hookspecs import hookimpl

PRESETS_FILE = "models.yaml"


def presets_path() -> Path:
    home = os.environ.get("PEERBENCH_HOME")
    if home:
        return Path(home).expanduser() / PRESETS_FILE
    import platformdirs

    return Path(platformdirs.user_config_dir("peerbench")) / PRESETS_FILE


def load_presets(path: Path | None = None) -> dict[str, dict[str, Any]]:
    import yaml

    path = path or presets_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of preset name -> settings")
    for name, preset in data.items():
        for field in ("backend", "model"):
            if not isinstance(preset.get(field), str):
                raise ConfigError(f"{path}: preset {name!r} needs a string field {field!r}")
    return data


def save_preset(name: str, *, backend: str, model: str, options: dict[str, Any] | None = None,
                backends: dict[str, dict[str, Any]] | None = None, description: str = "",
                path: Path | None = None) -> Path:
    """Add or replace one preset; the file is rewritten atomically under a lock."""
    import yaml
    from filelock import FileLock

    path = path or presets_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        presets = load_presets(path)
        presets[name] = {"backend": backend, "model": model, "options": dict(options or {}),
                         "backends": {k: dict(v) for k, v in (backends or {}).items()}, "description": description}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(presets, sort_keys=True))
        os.replace(tmp, path)
    return path


DEMO_PRESET = "demo-reviews"


def demo_reviews_path() -> Path:
    """The shipped replay file of SYNTHETIC reviews for the ``demo-synthetic`` task (beside its papers)."""
    from peerbench.task import builtin_task_dir

    return builtin_task_dir() / "demo" / "synthetic-reviews.jsonl"


@hookimpl
def register_models(register):
    """The built-in demo preset (a result without network or model), then the user's presets; a
    user's preset of the demo's name replaces it."""
    user = load_presets()
    if DEMO_PRESET not in user:
        register(DEMO_PRESET, backend="replay", model=str(demo_reviews_path()), options={"p_accept_field": "p_accept"},
                 description="SYNTHETIC reviews of the demo-synthetic task, replayed (no model runs)")
    for name, preset in user.items():
        register(name, backend=preset["backend"], model=preset["model"], options=preset.get("options") or {},
                 backends=preset.get("backends") or {}, description=preset.get("description") or str(presets_path()))
