"""The tokenizer search: transformers (about 2 s to import) is imported only when a tokenizer for
the model is on disk, in a folder or in the Hugging Face cache; never for a served model name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from peerbench.backends import token_counting
from peerbench.errors import BackendError

PROBE = """
import sys
from peerbench.backends.token_counting import transformers_counter
counter = transformers_counter(sys.argv[1])
print(type(counter).__name__, "transformers" in sys.modules)
"""


def probe(model: str, hub_cache) -> str:
    """transformers_counter in a fresh interpreter: (the counter's type, whether transformers got imported)."""
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, model], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def cache_layout(hub_cache, repo_id: str, tokenizer_files) -> None:
    """The Hugging Face cache's own layout: models--org--name/{refs/main, snapshots/<commit>/files}."""
    folder = hub_cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in tokenizer_files:
        shutil.copy(path, snapshot / path.name)


def test_a_served_model_name_with_nothing_on_disk_never_imports_transformers(tmp_path):
    assert probe("acme/served-only-model", tmp_path / "hub") == "NoneType False"


def test_a_folder_without_tokenizer_files_never_imports_transformers(tmp_path):
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "model.safetensors").write_bytes(b"")
    assert probe(str(tmp_path / "weights-only"), tmp_path / "hub") == "NoneType False"


def test_a_local_model_folder_gives_its_tokenizer(tiny_model_dir, tmp_path):
    assert probe(str(tiny_model_dir), tmp_path / "hub") == "TransformersTokenCounter True"


def test_a_model_in_the_hub_cache_gives_its_tokenizer(tiny_model_dir, tmp_path):
    hub = tmp_path / "hub"
    cache_layout(hub, "acme/tiny-reviewer", [p for p in tiny_model_dir.iterdir() if p.suffix == ".json"])
    assert probe("acme/tiny-reviewer", hub) == "TransformersTokenCounter True"
    assert probe("acme/other-model", hub) == "NoneType False"


def test_a_required_tokenizer_that_is_nowhere_names_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(token_counting, "hub_cache_folder", lambda model: tmp_path / "hub" / "models--acme--m")
    with pytest.raises(BackendError, match=r"^--backend-arg tokenizer=transformers: no tokenizer for 'acme/m' in "
                                           r"the local hub cache \(.*models--acme--m\)$"):
        token_counting.transformers_counter("acme/m", required=True)
