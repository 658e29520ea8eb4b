"""samples.jsonl, read line by line: each line checked as scoring needs it, a torn last line
(a crash mid-write) found, and what a run keeps of a sample to score it (never the review's text).
A corpus of any size is read in one pass without holding the file or its reviews."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError
from peerbench.json_text import parse_json

CONFIG_FILE, SAMPLES_FILE, METRICS_FILE, LOCK_FILE = "config.json", "samples.jsonl", "metrics.json", ".lock"
KEYS_FILE = "paper_keys.txt"  # the selection a run scores, one paper key a line


@functools.lru_cache(maxsize=1)
def _sample_line_model() -> Any:
    """The fields scoring reads from a stored line, with their types; other keys pass untouched.
    Built once, on first use (about 3 ms: not at import, and not once per line)."""
    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

    from peerbench.records import Decision

    class Counts(BaseModel):  # truncation and extra: what the summary table adds up
        model_config = ConfigDict(extra="allow")
        method: StrictStr | None = None
        cut_chars: int = Field(0, ge=0)
        cost_usd: float | None = Field(None, allow_inf_nan=False)
        thinking_tokens: int | None = None

    class SampleLine(BaseModel):
        model_config = ConfigDict(extra="allow")
        id: StrictStr
        venue: StrictStr
        decision: Decision
        gold: dict[StrictStr, StrictBool | None]
        p_accept: float | None = Field(ge=0, le=1, allow_inf_nan=False)
        error: StrictStr | None
        completion: StrictStr | None
        truncation: Counts
        extra: Counts = Field(default_factory=Counts)
        latency_s: float | None = Field(None, ge=0, allow_inf_nan=False)
        cached: StrictBool = False
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        mean_recommendation: float | None = Field(None, allow_inf_nan=False)
        recommendations: list[float] | None = None
        rating: float | None = Field(None, allow_inf_nan=False)

    return SampleLine


def check_sample(data: Any, where: str) -> dict[str, Any]:
    """One stored line, as scoring needs it, or a ConfigError naming the line and the field."""
    from pydantic import ValidationError

    from peerbench.errors import first_problem

    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a sample (a JSON object); fix or remove that line")
    try:
        _sample_line_model().model_validate(data)
    except ValidationError as exc:
        field, message, _ = first_problem(exc)
        raise ConfigError(f"{where}: field {field!r}: {message}; fix or remove that line") from None
    return data


# Never read by scoring, and the bulk of a stored line: what a run keeps of each sample to score it.
NOT_SCORED = ("completion", "messages", "title", "paper_id", "split", "prompt_hash", "finish_reason")


def for_scoring(sample: dict[str, Any]) -> dict[str, Any]:
    """A stored line without what scoring never reads (the review's text, the prompt, every
    generation's text with --samples k): the small per-paper record a run and `report` hold."""
    kept = {key: value for key, value in sample.items() if key not in NOT_SCORED}
    extra = kept.get("extra")
    if isinstance(extra, dict) and "completions" in extra:
        kept["extra"] = {key: value for key, value in extra.items() if key != "completions"}
    return kept


def read_sample_lines(path: Path, into: dict[str, dict[str, Any]], keep: Callable | None = None,
                      wanted: set[str] | None = None) -> int | None:
    """Each checked line of ``path`` into ``into`` by id (a later line supersedes an earlier one),
    passed through ``keep``; only ids in ``wanted`` where given. Returns a torn last line's offset."""
    def add(sample: dict[str, Any]) -> None:
        if wanted is None or sample["id"] in wanted:
            into[sample["id"]] = keep(sample) if keep is not None else sample

    return _each_line(path, add)


def _each_line(path: Path, handle_sample: Callable[[dict[str, Any]], None]) -> int | None:
    """Read samples.jsonl line by line (never whole), checking each line; the offset of a torn last line."""
    if not path.is_file():
        return None
    offset = 0
    with path.open("rb") as handle:
        line = handle.readline()
        number = 1
        while line:
            following = handle.readline()
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no newline")
                parsed = parse_json(line) if line.strip() else None
            except ValueError:  # TooDeep included
                if not following:
                    return offset
                raise ConfigError(f"{path}:{number}: not valid JSON; fix or remove that line") from None
            if parsed is not None:
                handle_sample(check_sample(parsed, f"{path}:{number}"))
            offset += len(line)
            line, number = following, number + 1
    return None


class StoredSamples(Sequence):
    """A run's samples, whole (review text included), in the order of its selection: read from
    samples.jsonl when first used, so a run of 200,000 papers holds none of them unless asked
    (``RunResult.samples``)."""

    def __init__(self, run_dir: str | Path, keys: Sequence[str]):
        self.run_dir, self.keys = Path(run_dir), list(keys)
        self._samples: list[dict[str, Any]] | None = None

    def _load(self) -> list[dict[str, Any]]:
        if self._samples is None:
            stored: dict[str, dict[str, Any]] = {}
            read_sample_lines(self.run_dir / SAMPLES_FILE, stored, wanted=set(self.keys))
            self._samples = [stored[key] for key in self.keys if key in stored]
        return self._samples

    def __getitem__(self, index):  # type: ignore[override]
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, (list, Sequence)) else other)

    def __repr__(self) -> str:
        return f"StoredSamples({self.run_dir}, {len(self.keys)} papers)"
