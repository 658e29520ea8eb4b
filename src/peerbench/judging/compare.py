"""compare's judge part: where every compared run was judged by the same judge (the same judge id),
each run's judged figures on the papers complete in all of them, and B minus A with a paired
bootstrap over those papers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from peerbench.judging.figures import aspect_values, length_values, points_values

COMPARED = ("points_model_matched", "points_human_raised", "points_model_matched_shuffled", "aspect_specificity",
            "aspect_actionability", "aspect_correctness", "aspect_coverage", "aspect_mean", "length_words")


def paper_values(line: Mapping[str, Any]) -> dict[str, float]:
    """The model's judged values of one paper (no human's: compare sets reviewers side by side)."""
    values: dict[str, Any] = {}
    if line.get("points"):
        model, _, shuffled = points_values(line["points"])
        values.update(model, **shuffled)
    if line.get("aspects"):
        values.update(aspect_values(line["aspects"])[0])
    values.update(length_values(line)[0])
    return {name: float(values[name]) for name in COMPARED if values.get(name) is not None}


def _judgements(run_dir: str | Path) -> dict[str, dict[str, Mapping[str, Any]]]:
    from peerbench.judging.stage import JUDGEMENTS, judged_samples

    root = Path(run_dir) / JUDGEMENTS
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / "samples.jsonl").is_file():
            found[folder.name] = {line["id"]: line for line in judged_samples(folder) if line.get("complete")}
    return found


def _difference(a: Sequence[float], b: Sequence[float], *, resamples: int, seed: int,
                confidence: float) -> dict[str, Any]:
    import numpy as np

    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    index = np.random.default_rng(seed).integers(0, len(diff), size=(max(resamples, 1), len(diff)))
    means = diff[index].mean(1)
    alpha = (1 - confidence) / 2
    return {"difference": float(diff.mean()), "n": len(diff),
            "ci": [float(q) for q in np.quantile(means, [alpha, 1 - alpha])],
            "p_value": float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))}


def compare_judgements(run_dirs: Sequence[str | Path], ids: Sequence[str], *, resamples: int, seed: int,
                       confidence: float) -> dict[str, Any]:
    """judge id -> {"n_papers", "runs": [name -> mean, interval], "pairs": [name -> B minus A]}."""
    from peerbench.metrics.review import aggregate

    per_run = [_judgements(run_dir) for run_dir in run_dirs]
    out: dict[str, Any] = {}
    for judge_id in sorted(set.intersection(*(set(run) for run in per_run))):
        shared = [i for i in ids if all(i in run[judge_id] for run in per_run)]
        if not shared:
            continue
        values = [[paper_values(run[judge_id][i]) for i in shared] for run in per_run]
        entry: dict[str, Any] = {"n_papers": len(shared), "runs": [], "pairs": []}
        for rows in values:
            entry["runs"].append(aggregate(rows, None, resamples=resamples, seed=seed, confidence=confidence))
        for rows in values[1:]:
            pair = {}
            for name in COMPARED:
                both = [(a[name], b[name]) for a, b in zip(values[0], rows) if name in a and name in b]
                if both:
                    pair[name] = _difference([a for a, _ in both], [b for _, b in both], resamples=resamples,
                                             seed=seed, confidence=confidence)
            entry["pairs"].append(pair)
        out[judge_id] = entry
    return out


def compare_part(run_dirs: Sequence[str | Path], ids: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    """``{"judge": ...}`` for compare's result, or nothing where no judge judged every run."""
    found = compare_judgements(run_dirs, ids, **kwargs)
    return {"judge": found} if found else {}
