"""The run directory and the response cache: nothing computed is ever lost or redone.

``samples.jsonl`` gets one flushed line per paper as soon as it is parsed; after a crash the
half-written last line is cut off and the same command carries on. The sqlite response cache
(WAL mode, so a kill during a write leaves it intact) lets a new run directory reuse answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError, mask_secrets
from peerbench.json_text import TooDeep, parse_json

from peerbench.pipeline.lines import (  # noqa: F401  (check_sample, for_scoring: used from here too)
    CONFIG_FILE,
    KEYS_FILE,
    LOCK_FILE,
    METRICS_FILE,
    SAMPLES_FILE,
    _each_line,
    check_sample,
    for_scoring,
    read_sample_lines,
)


def stable_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None
        self._handle = None

    def __enter__(self) -> RunDir:
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ConfigError(f"{self.path}: another peerbench run is writing to this run directory") from None
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def claim(self, config: dict[str, Any], paper_keys: list[str] | None = None) -> None:
        """Write config.json, or check that an existing run here has the same identity; with
        ``paper_keys``, the selection this run scores goes to paper_keys.txt (one key a line, its
        hash and count in config.json): 20 bytes a paper, kept out of config.json at any scale."""
        path = self.path / CONFIG_FILE
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except json.JSONDecodeError:
                existing = {}
            if existing.get("run_identity") != config["run_identity"]:
                raise ConfigError(f"{self.path}: holds a run with different settings "
                                  f"(task, backend, model or generation); pick another --out or remove it")
        if paper_keys is not None:
            text = "".join(key + "\n" for key in paper_keys)
            config["paper_keys_sha256"] = hashlib.sha256(text.encode()).hexdigest()
            _write_atomically(self.path / KEYS_FILE, text)
        _write_atomically(path, json.dumps(mask_secrets(config), indent=2, sort_keys=True))

    def read_samples(self, keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """Stored samples by id, in one pass over the file, each passed through ``keep`` (e.g.
        :func:`for_scoring`) as it is read; a torn last line (a crash mid-write) is cut off the file."""
        samples: dict[str, dict[str, Any]] = {}
        torn_at = read_sample_lines(self.path / SAMPLES_FILE, samples, keep)
        if torn_at is not None:
            with (self.path / SAMPLES_FILE).open("r+b") as handle:
                handle.truncate(torn_at)
        return samples

    def read_full(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        """The stored lines, whole, of the papers ``keys`` names (the last line of each)."""
        found: dict[str, dict[str, Any]] = {}
        read_sample_lines(self.path / SAMPLES_FILE, found, None, wanted=keys)
        return found

    def append(self, sample: dict[str, Any]) -> None:
        """One line, secrets masked, flushed; a write that fails (a full disk) names samples.jsonl."""
        path = self.path / SAMPLES_FILE
        with naming(path):
            if self._handle is None:
                self._handle = path.open("a", encoding="utf-8")
            try:
                self._handle.write(json.dumps(mask_secrets(sample), ensure_ascii=False) + "\n")
                self._handle.flush()
            except OSError:  # drop the handle: closing it would fail again, hiding which file it was
                handle, self._handle = self._handle, None
                with contextlib.suppress(OSError):
                    handle.close()
                raise

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        tmp = self.path / (METRICS_FILE + ".tmp")
        write_file(tmp, json.dumps(mask_secrets(metrics), indent=2, sort_keys=True), METRICS_FILE)
        os.replace(tmp, self.path / METRICS_FILE)


@contextlib.contextmanager
def naming(path: Path, shown: str | Path | None = None):
    """An OSError inside (a full disk: "[Errno 28] No space left on device" names no file when a write,
    not an open, fails) is raised again naming ``shown`` (default ``path``): the user learns which file."""
    try:
        yield
    except OSError as exc:
        if exc.filename and shown is None:
            raise
        target = path.with_name(str(shown)) if isinstance(shown, str) else (shown or path)
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None


def write_file(path: Path, text: str, shown: str | Path | None = None) -> None:
    """``path.write_text`` whose failures name the file (see :func:`naming`)."""
    with naming(path, shown):
        path.write_text(text, encoding="utf-8")


def parse_samples(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The samples of a samples.jsonl, and the byte offset of a torn last line if there is one.

    Only the last line can be torn by a crash (the file is append-only); a bad line anywhere else
    is an error naming it, so that nothing after it is ever thrown away.
    """
    samples: list[dict[str, Any]] = []
    torn_at = _each_line(path, samples.append)
    return samples, torn_at


def read_paper_keys(path: Path, config: dict[str, Any]) -> list[str] | None:
    """The selection config.json's run scored: its own list (runs before paper_keys.txt), or
    paper_keys.txt where its hash matches config.json's (else None: every sample)."""
    if "paper_keys" in config:
        return config["paper_keys"]
    expected = config.get("paper_keys_sha256")
    try:
        text = (path / KEYS_FILE).read_text()
    except OSError:
        return None
    if expected is None or hashlib.sha256(text.encode()).hexdigest() != expected:
        return None
    return text.splitlines()


def read_run(path: str | Path, *, scoring_only: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """config.json and samples.jsonl of a finished or interrupted run, for report and rescoring;
    with ``scoring_only``, each sample without what scoring never reads (:func:`for_scoring`).
    config["paper_keys"] is the run's selection (read from paper_keys.txt)."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(f"{path}: not a peerbench run directory (no {CONFIG_FILE})")
    try:
        config = parse_json(config_path.read_text())
    except (json.JSONDecodeError, TooDeep) as exc:
        raise ConfigError(f"{config_path}: not valid JSON ({exc.msg})") from None
    keys = read_paper_keys(path, config)
    if keys is not None:
        config["paper_keys"] = keys
    # A paper requested again (--retry-failed) has a later line that supersedes its earlier one.
    samples: dict[str, dict[str, Any]] = {}
    read_sample_lines(path / SAMPLES_FILE, samples, for_scoring if scoring_only else None)
    return config, list(samples.values())


def _write_atomically(path: Path, text: str) -> None:
    """Written whole or not at all; a failed write (a full disk) names ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write_file(tmp, text, shown=path)
    os.replace(tmp, path)


class ResponseCache:
    """(backend, model, settings, prompt) -> completion, shared by every run on this machine.

    The key is a hash of the request as sent; the backend and model are kept beside each entry only
    so that ``peerbench cache`` can list and clear them by model."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30)
            self._prepare_schema()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _prepare_schema(self, tries: int = 20) -> None:
        """WAL mode and the table, tolerating other runs opening the same cache at the same moment:
        switching to WAL can be refused while another connection holds the file (SQLite does not
        wait on it), and two old caches can race to add the model column."""
        for attempt in range(tries):
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                                 "created REAL NOT NULL, model TEXT)")
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
                if "model" not in columns:  # a cache written before models were recorded
                    self._db.execute("ALTER TABLE responses ADD COLUMN model TEXT")
                self._db.commit()
                return
            except sqlite3.OperationalError as exc:
                if "duplicate column" in str(exc):
                    return
                if "locked" not in str(exc) or attempt == tries - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _unusable(self, exc: Exception) -> ConfigError:
        return ConfigError(f"{self.path}: the response cache is unusable ({exc}); point PEERBENCH_HOME at a "
                           "writable folder with free space, or run with --no-cache")

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any], model: str | None = None) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value, created, model) VALUES (?, ?, ?, ?)",
                             (key, json.dumps(mask_secrets(value)), time.time(), model))
            self._db.commit()
        except sqlite3.Error as exc:  # a full disk, say: the paper's sample is already stored
            raise self._unusable(exc) from None

    def summary(self) -> list[tuple[str | None, int, float, float]]:
        """(model, entries, oldest, newest) per model, most entries first."""
        return self._db.execute("SELECT model, COUNT(*), MIN(created), MAX(created) FROM responses GROUP BY model "
                                "ORDER BY COUNT(*) DESC").fetchall()

    def delete(self, *, model: str | None = None, older_than: float | None = None) -> int:
        """Remove entries (of one model, or created before a time); returns how many."""
        where, params = [], []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if older_than is not None:
            where.append("created < ?")
            params.append(older_than)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        removed = self._db.execute(f"DELETE FROM responses{clause}", params).rowcount
        self._db.commit()
        return removed

    def close(self) -> None:
        self._db.close()


def warn(message: str) -> None:
    """One line on stderr for what a run survives (a run's failures are errors, never warnings)."""
    import sys

    from peerbench.errors import scrub

    print(f"warning: {scrub(message)}", file=sys.stderr, flush=True)


def open_cache(path: Path) -> ResponseCache | None:
    """The response cache, or None with one warning when it cannot be used: the run goes on without it."""
    try:
        return ResponseCache(path)
    except (ConfigError, OSError) as exc:
        warn(f"{exc if isinstance(exc, ConfigError) else f'{path}: {exc.strerror}'}; this run goes on without it")
        return None


class SampleRecorder:
    """Stage 6, store: every finished sample is appended to samples.jsonl the moment it exists, and
    every successful answer goes into the response cache. A run whose first requests all fail stops
    early (the failures are kept), rather than failing paper after paper."""

    def __init__(self, run_dir: RunDir, cache: ResponseCache | None, papers: int, early_stop: int | None = 8):
        self.run_dir = run_dir
        self.cache = cache
        self.stop_after = None if early_stop is None else min(early_stop, papers)
        self.samples: list[dict[str, Any]] = []
        self.failures = self.successes = 0

    def cache_answer(self, key: str, completion: Any, cached: bool, model: str | None = None) -> None:
        """Only real answers are cached: never a failure, never an empty text."""
        if self.cache is not None and not cached and not completion.error and completion.text:
            try:
                self.cache.put(key, completion.to_dict(), model)
            except ConfigError as exc:  # a full disk, say: the sample is stored; go on uncached
                warn(f"{exc}; this run goes on without it")
                self.cache = None

    def record(self, sample: Any) -> None:
        line = mask_secrets(sample.to_json())
        self.run_dir.append(line)
        self.samples.append(for_scoring(line))  # all a run scores; the review's text stays on disk
        if sample.error:
            self.failures += 1
        else:
            self.successes += 1
        if self.stop_after is not None and self.successes == 0 and self.failures >= self.stop_after:
            from peerbench.errors import BackendError

            raise BackendError(f"every request failed so far ({self.failures}); first error: "
                               f"{self.samples[0]['error']}")

