"""Where peerbench keeps its caches: ``PEERBENCH_HOME`` if set, else the platform's user cache dir."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    home = os.environ.get("PEERBENCH_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("peerbench"))
