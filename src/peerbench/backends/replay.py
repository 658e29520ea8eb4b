"""Score generations made elsewhere: ``--model FILE.jsonl`` with one completion per paper.

PeerRead ids repeat between venues (``355`` is both ``acl_2017/test/355`` and
``iclr_2017/dev/355``), so a row must never be matched by a guess: a wrong match scores one
paper's review as another's and silently shifts every number. The file is therefore resolved
once, in :meth:`ReplayBackend.setup`, against every paper of the run's selection; anything
ambiguous or malformed stops the run there with one line naming ``file:line``, before any
generation. :meth:`ReplayBackend.generate` is then a dictionary lookup.

A row matches a paper by, in this order:

- its sample key (``venue/split/id``, or ``venue/id``) in the id field;
- the id plus the row's venue and split fields (``-o venue_field``, ``-o split_field``); a venue
  without a split is enough when only one paper of that venue has the id;
- a bare id, only when exactly one paper of the selection has it.

A row that matches no paper of the selection is ignored (a file may cover more papers than a
``--limit``-ed run); a paper that no row matches fails, with its error stored in the sample.

A completion that is not a string (``null``, a number, a missing field) fails that paper only
rather than the whole file: generation files record upstream failures that way, and a run with
some failed papers is still worth scoring; a misnamed ``completion_field`` fails every paper,
which stops the run early with that error. A P(accept) that is not a number in [0, 1] is a
ConfigError instead: it would silently corrupt AUROC and calibration rather than show up as a
failure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peerbench.backends import Backend, BackendOptions, RunContext
from peerbench.errors import ConfigError
from peerbench.hookspecs import hookimpl
from peerbench.json_text import TooDeep, parse_json
from peerbench.records import ChatRequest, Completion, Paper

MISSING = object()


class ReplayOptions(BackendOptions):
    id_field: str = "id"
    completion_field: str = "completion"
    p_accept_field: str | None = None
    venue_field: str = "venue"
    split_field: str = "split"


@dataclass(frozen=True)
class _Row:
    """One resolved line: where it came from (for error messages) and what it says."""

    line: int
    completion: Any
    p_accept: float | None


class ReplayBackend(Backend):
    name = "replay"
    Options = ReplayOptions
    cacheable = False
    batch_size = 256
    in_process = False  # reads a file; runs of it overlap fine

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self.path = Path(self.model)
        if not self.path.is_file():
            raise ConfigError(f"--model {self.model}: no such file (the replay backend reads a JSONL of completions)")
        self._rows: dict[str, _Row] | None = None
        self._sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        """The file's content hash is part of the run's identity: an edited file at the same path is
        another run, never one whose stored answers are served again."""
        if self._sha256 is None:  # read once: describe() is asked for the identity, config.json and cache keys
            self._sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {**super().describe(), "file_sha256": self._sha256}

    async def setup(self, context: RunContext) -> None:
        self._rows = self._resolve(self._candidates(context))

    @staticmethod
    def _candidates(context: RunContext) -> list[Paper]:
        """The papers a row may name: the task's whole selection as well as the run's (--split, --ids
        and --limit narrow what is scored, never which paper a bare id could mean)."""
        papers = {paper.key: paper for paper in context.papers}
        if context.dataset is not None:
            for paper in context.load_papers():
                papers.setdefault(paper.key, paper)
        return list(papers.values())

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if self._rows is None:
            raise RuntimeError("ReplayBackend.setup(context) must run first: it matches rows to papers")
        return [self._completion(request.paper.key if request.paper else request.id) for request in requests]

    def _completion(self, key: str) -> Completion:
        assert self._rows is not None
        row = self._rows.get(key)
        field = self.options.completion_field
        if row is None:
            return Completion(error=f"{self.path}: no row with {self.options.id_field} = {key!r} "
                                    f"(nor a venue/split/id that matches it)")
        if not isinstance(row.completion, str):
            got = "missing" if row.completion is MISSING else f"got {type(row.completion).__name__}"
            return Completion(error=f"{self.path}:{row.line}: field {field!r} is not a string ({got}); "
                                    f"name the completion's field with -o completion_field=NAME")
        return Completion(text=row.completion, p_accept=row.p_accept, finish_reason="stop")

    def _resolve(self, papers: Sequence[Paper]) -> dict[str, _Row]:
        """Map each paper key to its row, refusing duplicates; rows for other papers are dropped."""
        by_id: dict[str, list[Paper]] = {}
        for paper in papers:
            by_id.setdefault(paper.id, []).append(paper)
        resolved: dict[str, _Row] = {}
        for line, row in self._read():
            paper = self._match(line, row, by_id)
            if paper is None:
                continue
            if paper.key in resolved:
                raise ConfigError(f"{self.path}: lines {resolved[paper.key].line} and {line} are both "
                                  f"for paper {paper.key}; keep one")
            resolved[paper.key] = _Row(line, row.get(self.options.completion_field, MISSING), self._p_accept(line, row))
        if not resolved:
            raise ConfigError(f"{self.path}: no row matches a paper of this task (rows need {self.options.id_field!r} "
                              f"as venue/split/id or a bare id, and {self.options.venue_field!r} where ids repeat)")
        return resolved

    def _read(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (line number, row) for each non-blank line, refusing anything that is not a JSON object."""
        for number, raw in enumerate(self.path.read_bytes().split(b"\n"), 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{self.path}:{number}: not UTF-8 (byte {exc.start + 1} of the line)") from None
            if not text.strip():
                continue
            try:
                row = parse_json(text)
            except (json.JSONDecodeError, TooDeep) as exc:
                raise ConfigError(f"{self.path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{self.path}:{number}: a row must be a JSON object, not {type(row).__name__}")
            yield number, row

    def _match(self, line: int, row: dict[str, Any], by_id: dict[str, list[Paper]]) -> Paper | None:
        """The one paper of the selection this row is for, None if none; ConfigError if it could be several."""
        opts = self.options
        paper_id = _text(row.get(opts.id_field))
        if paper_id is None:
            raise ConfigError(f"{self.path}:{line}: field {opts.id_field!r} missing, empty or not a string/integer "
                              f"(name the id's field with -o id_field=NAME)")
        venue, split = _text(row.get(opts.venue_field)), _text(row.get(opts.split_field))
        if paper_id not in by_id and "/" in paper_id:  # a sample key: venue/split/id or venue/id
            parts = paper_id.split("/")
            if len(parts) == 3:
                venue, split, paper_id = parts
            elif len(parts) == 2:
                venue, split, paper_id = parts[0], None, parts[1]
        candidates = [p for p in by_id.get(paper_id, ())
                      if (venue is None or p.venue == venue) and (split is None or p.split == split)]
        if len(candidates) > 1:
            keys = " and ".join(sorted(p.key for p in candidates))
            if venue is None:
                fix = (f"give each row a {opts.venue_field!r} field, or name the field that holds it with "
                       f"-o venue_field=NAME, or use venue/split/id keys")
            else:
                fix = (f"give each row a {opts.split_field!r} field, or name the field that holds it with "
                       f"-o split_field=NAME, or use venue/split/id keys")
            raise ConfigError(f"{self.path}:{line}: id {paper_id!r} could be {keys}; {fix}")
        return candidates[0] if candidates else None

    def _p_accept(self, line: int, row: dict[str, Any]) -> float | None:
        """The row's P(accept) if the file has one: a number in [0, 1], else the file is refused."""
        field = self.options.p_accept_field
        value = row.get(field) if field else None
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            # NaN fails the range test too, so it is refused here rather than poisoning AUROC later.
            raise ConfigError(f"{self.path}:{line}: field {field!r} must be a number in [0, 1], got {value!r}")
        return float(value)


def _text(value: Any) -> str | None:
    """A field as an id/venue/split string: PeerRead ids come as ints or strings; blanks count as absent."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text or None


@hookimpl
def register_backends(register):
    register("replay", ReplayBackend, description="rescore completions from a JSONL file (--model FILE.jsonl)")
