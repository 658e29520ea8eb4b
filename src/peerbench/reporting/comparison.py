"""Two or more runs of one task, side by side: is reviewer B really better than reviewer A?

On 95 papers, a 0.02 F1 gap is noise more often than not, so every difference comes with a
paired bootstrap interval (the same resampled papers for both runs), McNemar's exact test on the
decisions, and Cohen's kappa for how often the two reviewers agree at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError
from peerbench.records import Decision

PAIRED_METRICS = ("f1", "accuracy", "balanced_accuracy")


def _load(run_dirs: Sequence[str | Path]) -> list[tuple[str, dict[str, Any], dict[str, dict[str, Any]]]]:
    """Each run's answered samples by id: a failed request is no answer to pair with another run's."""
    from peerbench.pipeline.store import read_run
    from peerbench.reporting.scoring import is_answered, selected

    runs = []
    for run_dir in run_dirs:
        config, samples = read_run(run_dir)
        answered = {s["id"]: s for s in selected(config, samples) if is_answered(s)}
        if not answered:
            raise ConfigError(f"{run_dir}: no answered samples yet")
        runs.append((str(run_dir), config, answered))
    return runs


def protocol_name(config: dict[str, Any]) -> str:
    """The run's protocol: a multi-call one by name, else single or self-consistency (k samples)."""
    if config.get("protocol"):
        return config["protocol"]["name"]
    return "self-consistency" if (config.get("samples_per_paper") or 1) > 1 else "single"


def run_entry(run_dir: str, config: dict[str, Any], overall: dict[str, Any]) -> dict[str, Any]:
    return {"run_dir": run_dir, "backend": config["backend"], "model": config["model"],
            "protocol": protocol_name(config), "metrics": overall["metrics"], "confusion": overall["confusion"],
            "n_with_p_accept": overall["n_with_p_accept"]}


def _check_same_task(runs, label_rule: str | None) -> str:
    first_dir, first, _ = runs[0]
    for run_dir, config, _ in runs[1:]:
        if config["task"] != first["task"]:
            raise ConfigError(f"cannot compare runs of different tasks: {first_dir} is {first['task']!r}, "
                              f"{run_dir} is {config['task']!r}")
        if config.get("task_fingerprint") != first.get("task_fingerprint"):
            raise ConfigError(f"cannot compare {first_dir} and {run_dir}: both are task {config['task']!r} but with "
                              "different definitions (prompt, labels or data); rerun one of them")
    rule = label_rule or first["primary_label_rule"]
    for run_dir, config, _ in runs:
        if rule not in config["label_rules"]:
            raise ConfigError(f"--label-rule {rule}: {run_dir} was scored with {', '.join(config['label_rules'])}")
    return rule


def mcnemar_exact(a_correct, b_correct) -> dict[str, float | int]:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    import numpy as np
    from scipy.stats import binomtest

    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p}


def paired_bootstrap(inputs_a, inputs_b, metrics, *, resamples: int, seed: int, confidence: float) -> dict:
    """B minus A on the same resampled papers: interval, and the share of resamples where B <= A."""
    import numpy as np

    from peerbench.reporting.scoring import resampled_counts

    n = len(inputs_a.y_true)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(max(resamples, 1), n))
    alpha = (1 - confidence) / 2

    counts_a, counts_b = resampled_counts(inputs_a, index), resampled_counts(inputs_b, index)
    out = {}
    for metric in metrics:
        diff = (np.asarray(metric.from_counts(*counts_b), dtype=float)
                - np.asarray(metric.from_counts(*counts_a), dtype=float))
        point = float(metric.compute(inputs_b) - metric.compute(inputs_a))
        # Two-sided bootstrap p-value: how often the resampled difference falls on the other side of 0.
        p = float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))
        out[metric.name] = {"difference": point, "ci": [float(np.quantile(diff, alpha)),
                                                         float(np.quantile(diff, 1 - alpha))], "p_value": p}
    return out


def compare(run_dirs: Sequence[str | Path], *, label_rule: str | None = None, resamples: int | None = None,
            seed: int | None = None, confidence: float = 0.95, review_options: dict | None = None) -> dict[str, Any]:
    """Compare runs of one task on the papers all of them have; the first run is the reference. The
    bootstrap is the first run's own unless told otherwise."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    from peerbench.registry import registries
    from peerbench.reporting.review_scoring import split_measures
    from peerbench.reporting.scoring import bootstrap_settings, score_inputs, score_samples

    if len(run_dirs) < 2:
        raise ConfigError("compare needs at least two run directories")
    resamples, seed = bootstrap_settings(run_dirs[0], resamples, seed)
    runs = _load(run_dirs)
    rule = _check_same_task(runs, label_rule)
    common = set.intersection(*(set(samples) for _, _, samples in runs))
    ids = sorted(i for i in common if runs[0][2][i]["gold"].get(rule) is not None)
    if not ids:
        raise ConfigError(f"the runs share no paper with a known gold label under {rule}")
    regs = registries()
    metrics = split_measures([regs.metrics.get(name).value for name in regs.metrics.names()])[0]
    policy = (runs[0][1].get("task_definition") or {}).get("unparsed", "wrong")
    if policy == "exclude":
        policy = "wrong"  # pairing needs the same papers in every run
    paired_metrics = [regs.metrics.get(name).value for name in PAIRED_METRICS]

    result: dict[str, Any] = {"task": runs[0][1]["task"], "label_rule": rule, "n_papers": len(ids),
                              "papers_not_in_every_run": len(set.union(*(set(s) for _, _, s in runs)) - common),
                              "bootstrap": {"resamples": resamples, "seed": seed, "confidence": confidence},
                              "runs": [], "pairs": []}
    inputs = []
    for run_dir, config, samples in runs:
        rows = [samples[i] for i in ids]
        scored = score_samples(rows, label_rules=[rule], metrics=metrics, unparsed_policy=policy,
                               resamples=resamples, seed=seed, confidence=confidence)["label_rules"][rule]
        result["runs"].append(run_entry(run_dir, config, scored["overall"]))
        inputs.append(score_inputs(rows, rule, policy))

    reference_dir, _, reference = runs[0]
    base = inputs[0]
    decisions_a = [reference[i]["decision"] for i in ids]
    for (run_dir, _, samples), current in zip(runs[1:], inputs[1:]):
        decisions_b = [samples[i]["decision"] for i in ids]
        disagree = [{"id": i, "title": samples[i].get("title"), "gold": Decision.of(samples[i]["gold"][rule]).value,
                     "a": a, "b": b} for i, a, b in zip(ids, decisions_a, decisions_b) if a != b]
        result["pairs"].append({
            "a": reference_dir, "b": run_dir,
            "differences": paired_bootstrap(base, current, paired_metrics, resamples=resamples, seed=seed,
                                            confidence=confidence),
            "mcnemar": mcnemar_exact(base.y_pred == base.y_true, current.y_pred == current.y_true),
            "cohen_kappa": float(cohen_kappa_score(decisions_a, decisions_b))
            if len(set(decisions_a) | set(decisions_b)) > 1 else 1.0,
            "agreement": float(np.mean([a == b for a, b in zip(decisions_a, decisions_b)])),
            "disagreements": disagree,
        })
    result.update(extra_parts(runs, ids, review_options, resamples=resamples, seed=seed, confidence=confidence))
    return result


def extra_parts(runs: Sequence[tuple[str, dict[str, Any], dict[str, Any]]], ids: Sequence[str],
                review_options: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
    """compare's parts beyond the decisions: the review measures, and the judgements every run has."""
    from peerbench.judging.compare import compare_part as judge_part
    from peerbench.reporting.review_scoring import compare_part

    return {**compare_part(runs, ids, options=review_options, **kwargs),
            **judge_part([run_dir for run_dir, _, _ in runs], ids, **kwargs)}
