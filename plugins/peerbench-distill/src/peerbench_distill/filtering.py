"""Stage 3, filter: keep the teacher reviews whose decision the reference's parser reads (the
card's regex; a review that echoes both decision lines is AMBIGUOUS and dropped, never taught as
one class), drop duplicate texts, split train/validation with a fixed seed, and report the accept
share of each split (the published recipe's is 72.1%)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from peerbench import DataError, Decision, parse_decision, read_run
from peerbench_distill.config import DistillConfig
from peerbench_distill.teacher import TEACHER_DIR

TRAIN_FILE, VAL_FILE, STATS_FILE = "train.jsonl", "val.jsonl", "filter.json"


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    tmp.replace(path)


def filter_pairs(workdir: Path, config: DistillConfig) -> dict[str, Any]:
    teacher_dir = workdir / TEACHER_DIR
    if not (teacher_dir / "samples.jsonl").is_file():
        raise DataError(f"{teacher_dir}: no teacher reviews yet; run `peerbench distill teacher --workdir {workdir}`")
    _, samples = read_run(teacher_dir)
    rows, seen = [], set()
    dropped = {"failed": 0, "no_decision_line": 0, "ambiguous": 0, "duplicate": 0}
    for sample in samples:
        text = sample.get("completion") or ""
        if sample.get("error"):
            dropped["failed"] += 1
            continue
        decision = parse_decision(text)
        if not decision.decided:
            dropped["ambiguous" if decision is Decision.AMBIGUOUS else "no_decision_line"] += 1
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(digest)
        messages = sample.get("messages")
        if not messages:
            raise DataError(f"{teacher_dir}/samples.jsonl: sample {sample['id']} has no stored prompt")
        rows.append({"id": sample["id"], "prompt": messages,
                     "completion": [{"role": "assistant", "content": text}],
                     "decision": decision.value})
    if len(rows) < 2:
        raise DataError(f"only {len(rows)} usable teacher review(s) in {teacher_dir}; nothing to train on")
    rows.sort(key=lambda r: r["id"])
    random.Random(config.split_seed).shuffle(rows)
    val_size = config.val_size if len(rows) >= 2 * config.val_size else max(1, len(rows) // 5)
    val, train = rows[:val_size], rows[val_size:]
    _write(workdir / TRAIN_FILE, train)
    _write(workdir / VAL_FILE, val)

    def share(part: list[dict[str, Any]]) -> float:
        return sum(r["decision"] == "ACCEPT" for r in part) / len(part)

    stats = {"teacher_samples": len(samples), "kept": len(rows), "dropped": dropped, "train": len(train),
             "val": len(val), "train_accept_share": share(train), "val_accept_share": share(val)}
    (workdir / STATS_FILE).write_text(json.dumps(stats, indent=2))
    return stats
