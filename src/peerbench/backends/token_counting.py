"""Counting a chat's tokens the way the model will see them, for truncation.

Best is the server's own count (vLLM's POST /tokenize applies the chat template the server will
use); next the model's tokenizer through transformers, if installed and already on disk; else the
caller falls back to the character budget. Each counter carries a ``method`` name, which the run
records with every sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peerbench.errors import BackendError

PROBE_MESSAGES = [{"role": "user", "content": "Hello"}]


class ServerTokenCounter:
    method = "server-tokenize"

    def __init__(self, root: str, model: str, api_key: str):
        import httpx

        self.url = root.rstrip("/") + "/tokenize"
        self.model = model
        self.max_model_len: int | None = None
        self._client = httpx.Client(timeout=60.0, headers={"Authorization": f"Bearer {api_key}"})

    def count(self, messages: list[dict[str, str]]) -> int:
        response = self._client.post(self.url, json={"model": self.model, "messages": messages,
                                                     "add_generation_prompt": True})
        if response.status_code != 200:
            raise BackendError(f"POST {self.url} answered HTTP {response.status_code}: {response.text[:200]}")
        data = response.json()
        if not isinstance(data, Mapping) or not isinstance(data.get("count"), int):
            raise BackendError(f"POST {self.url}: the reply has no integer 'count'")
        if isinstance(data.get("max_model_len"), int):
            self.max_model_len = data["max_model_len"]
        return data["count"]

    __call__ = count


def server_counter(root: str, model: str, api_key: str) -> ServerTokenCounter | None:
    """A counter if the server has a working /tokenize route, else None (most servers do not)."""
    import httpx

    counter = ServerTokenCounter(root, model, api_key)
    try:
        counter.count(PROBE_MESSAGES)
    except (BackendError, httpx.HTTPError, ValueError):
        return None
    return counter


class TransformersTokenCounter:
    method = "transformers"

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def count(self, messages: list[dict[str, str]]) -> int:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, Mapping) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        return len(tok("\n\n".join(m["content"] for m in messages))["input_ids"])

    __call__ = count


def load_local_tokenizer(model: str) -> Any:
    """The model's tokenizer from a local folder or the local hub cache; never downloads."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model, local_files_only=True)


# What AutoTokenizer reads first in a folder: without one of these it cannot build a tokenizer.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "config.json")


def hub_cache_folder(model: str) -> Path | None:
    """The folder the Hugging Face hub would cache ``model`` in (``models--org--name`` under
    HF_HUB_CACHE, resolved from the environment as the hub resolves it); None without the hub."""
    try:
        from huggingface_hub import constants
    except ImportError:  # transformers depends on it: without it there is no transformers either
        return None
    sep = constants.REPO_ID_SEPARATOR
    return Path(constants.HF_HUB_CACHE) / f"models{sep}{model.replace('/', sep)}"


def local_tokenizer_place(model: str) -> Path | None:
    """Where a tokenizer for ``model`` could be on this machine without a download, or None.

    Importing transformers costs about 2 s of CPU, so it is imported only once something is there:
    a folder holding tokenizer or config files, or the model's folder in the hub cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path if any((path / name).is_file() for name in TOKENIZER_FILES) else None
    cached = hub_cache_folder(model)
    return cached if cached is not None and (cached / "snapshots").is_dir() else None


def transformers_counter(model: str, *, required: bool = False) -> TransformersTokenCounter | None:
    """The model's own tokenizer, if one is on disk (never downloaded); with ``required``, a
    missing one is an error naming where it was looked for."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        if required:
            raise BackendError("--backend-arg tokenizer=transformers: transformers is not installed; "
                               "run: pip install 'peerbench[hf]'") from None
        return None
    where = "folder" if Path(model).expanduser().exists() else f"local hub cache ({hub_cache_folder(model)})"
    if local_tokenizer_place(model) is None:
        if required:
            raise BackendError(f"--backend-arg tokenizer=transformers: no tokenizer for {model!r} in the {where}")
        return None
    try:
        return TransformersTokenCounter(load_local_tokenizer(model))
    except Exception as exc:  # any hub, file or config error means: no local tokenizer
        if required:
            raise BackendError(f"--backend-arg tokenizer=transformers: no tokenizer for {model!r} in the {where} "
                               f"({type(exc).__name__})") from None
        return None
