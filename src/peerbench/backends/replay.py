"""Score generations made elsewhere: ``--model FILE.jsonl`` with one completion per paper.

Ids may be peerbench's sample keys (``venue/split/id``) or bare PeerRead ids when those are
unique in the file, so published per-paper generations can be rescored without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peerbench.backends import Backend, BackendOptions, RunContext
from peerbench.errors import ConfigError
from peerbench.hookspecs import hookimpl
from peerbench.records import ChatRequest, Completion


class ReplayOptions(BackendOptions):
    id_field: str = "id"
    completion_field: str = "completion"
    p_accept_field: str | None = None


class ReplayBackend(Backend):
    name = "replay"
    Options = ReplayOptions
    cacheable = False
    batch_size = 256

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.path = Path(self.model)
        if not self.path.is_file():
            raise ConfigError(f"--model {self.model}: no such file (the replay backend reads a JSONL of completions)")
        self._rows: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        opts = self.options
        rows: dict[str, dict[str, Any]] = {}
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{self.path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict) or opts.id_field not in row:
                    raise ConfigError(f"{self.path}:{number}: field {opts.id_field!r} missing")
                rows[str(row[opts.id_field])] = row
        return rows

    def _index(self) -> dict[str, dict[str, Any]]:
        """Rows by id, read once; bare PeerRead ids that are unique in the file map to their row too."""
        if self._rows is None:
            self._rows = self._load()
            bare: dict[str, list[str]] = {}
            for key in self._rows:
                bare.setdefault(key.rsplit("/", 1)[-1], []).append(key)
            self._bare = {k: v[0] for k, v in bare.items() if len(v) == 1}
        return self._rows

    async def setup(self, context: RunContext) -> None:
        self._index()

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        self._index()
        return [self._one(r) for r in requests]

    def _one(self, request: ChatRequest) -> Completion:
        assert self._rows is not None
        opts = self.options
        row = self._rows.get(request.id)
        if row is None:
            paper_id = str(request.meta.get("paper_id", ""))
            key = paper_id if paper_id in self._rows else self._bare.get(paper_id)
            row = self._rows.get(key) if key else None
        if row is None:
            return Completion(error=f"{self.path}: no row with {opts.id_field} = {request.id!r}")
        text = row.get(opts.completion_field)
        if not isinstance(text, str):
            return Completion(error=f"{self.path}: row {request.id!r} has no string field {opts.completion_field!r}")
        p_accept = row.get(opts.p_accept_field) if opts.p_accept_field else None
        return Completion(text=text, p_accept=float(p_accept) if p_accept is not None else None, finish_reason="stop")


@hookimpl
def register_backends(register):
    register("replay", ReplayBackend, description="rescore completions from a JSONL file (--model FILE.jsonl)")
