"""Samples -> metrics.json: every label rule, overall and per venue, with seeded bootstrap
intervals and the trivial baselines beside each result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError
from peerbench.metrics import DEFAULT_RESAMPLES, Metric, ScoreInputs  # noqa: F401  (DEFAULT_RESAMPLES: re-exported)
from peerbench.records import Decision

DEFAULT_CONFIDENCE = 0.95


UNPARSED_POLICIES = ("wrong", "reject", "exclude")


def is_answered(sample: dict[str, Any]) -> bool:
    """A model answer to score: any review, with or without a decision line. A failed request
    (error set, decision FAILED) is not one: it is never scored, and it makes the run incomplete."""
    return not sample.get("error") and sample.get("decision") != Decision.FAILED


def score_inputs(rows: list[dict[str, Any]], rule: str, policy: str, y_pred_override=None) -> ScoreInputs:
    """Arrays for the metrics. Under policy ``wrong`` (the default) a review without a usable decision
    counts as the opposite of gold; under ``reject`` as a rejection; ``exclude`` drops it earlier."""
    import numpy as np

    y_true = np.array([bool(r["gold"][rule]) for r in rows], dtype=bool)
    decisions = [r.get("decision") for r in rows]
    if y_pred_override is not None:
        y_pred = np.full(len(rows), y_pred_override, dtype=bool)
        nothing = np.zeros(len(rows), dtype=bool)
        return ScoreInputs(y_true, y_pred, np.full(len(rows), np.nan), nothing, y_pred, nothing)
    said_accept = np.array([d == Decision.ACCEPT for d in decisions], dtype=bool)
    unparsed = np.array([d not in (Decision.ACCEPT, Decision.REJECT) for d in decisions], dtype=bool)
    ambiguous = np.array([d == Decision.AMBIGUOUS for d in decisions], dtype=bool)
    fallback = ~y_true if policy == "wrong" else np.zeros(len(rows), dtype=bool)
    y_pred = np.where(unparsed, fallback, said_accept)
    p_accept = np.array([np.nan if r.get("p_accept") is None else float(r["p_accept"]) for r in rows], dtype=float)
    from peerbench.metrics.rating import with_ratings

    return with_ratings(ScoreInputs(y_true, y_pred, p_accept, unparsed, said_accept, ambiguous), rows)


def confusion(inputs: ScoreInputs) -> dict[str, int]:
    """Confusion counts after the unparsed policy, plus how many reviews gave no usable decision:
    ``unparsed`` (no decision line) and ``ambiguous`` (both lines), counted apart."""
    t, p = inputs.y_true, inputs.y_pred
    ambiguous = int(inputs.ambiguous.sum()) if inputs.ambiguous is not None else 0
    return {"tp": int((t & p).sum()), "fp": int((~t & p).sum()), "fn": int((t & ~p).sum()),
            "tn": int((~t & ~p).sum()), "unparsed": int(inputs.unparsed.sum()) - ambiguous, "ambiguous": ambiguous}


def point_estimates(inputs: ScoreInputs, metrics: Sequence[Metric]) -> dict[str, float]:
    import numpy as np

    out = {}
    for metric in metrics:
        if metric.needs_proba and np.isnan(inputs.p_accept).all():
            continue
        if len(inputs.y_true) == 0:
            continue
        value = metric.compute(inputs)
        if value is not None:
            out[metric.name] = float(value)
    return out


def resampled_counts(inputs: ScoreInputs, index) -> tuple:
    """(tp, fp, fn, tn, unparsed), one value per row of the resample index matrix."""
    t, p, u = inputs.y_true[index], inputs.y_pred[index], inputs.unparsed[index]
    return (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1), (~t & ~p).sum(1), u.sum(1)


def bootstrap(inputs: ScoreInputs, metrics: Sequence[Metric], *, resamples: int, seed: int,
              confidence: float) -> dict[str, list[float]]:
    """Percentile intervals; count-based metrics vectorised over the resamples, drawn and used a
    chunk of rows at a time (peerbench.reporting.resampling)."""
    import numpy as np

    from peerbench.reporting.resampling import resampled_values

    n = len(inputs.y_true)
    if n == 0 or resamples <= 0:
        return {}
    alpha = (1 - confidence) / 2
    out = {}
    for name, values in resampled_values(inputs, metrics, resamples=resamples, seed=seed,
                                         counts_of=resampled_counts).items():
        values = values[~np.isnan(values)]
        if len(values):
            out[name] = [float(q) for q in np.quantile(values, [alpha, 1 - alpha])]
    return out


def score_group(inputs: ScoreInputs, metrics: Sequence[Metric], *, resamples: int, seed: int,
                confidence: float) -> dict[str, Any]:
    values = point_estimates(inputs, metrics)
    intervals = bootstrap(inputs, metrics, resamples=resamples, seed=seed, confidence=confidence)
    import numpy as np

    from peerbench.metrics.rating import n_model_rated, n_with_rating

    rated = n_with_rating(inputs)
    return {"n": int(len(inputs.y_true)), "n_with_p_accept": int((~np.isnan(inputs.p_accept)).sum()),
            **({"n_with_rating": rated, "n_model_rated": n_model_rated(inputs)} if rated is not None else {}),
            "confusion": confusion(inputs),
            "metrics": {name: {"value": v, "ci": intervals.get(name)} for name, v in values.items()}}


def add_human_ceiling(entry: dict[str, Any], rows: Sequence[dict[str, Any]], rule: str, seed: int) -> None:
    """One human reviewer beside the baselines (one venue's papers), and in each venue's group."""
    from peerbench.metrics.ceiling import HUMAN, human_ceiling_for

    ceiling = human_ceiling_for(rows, rule, seed)
    if ceiling:
        entry["baselines"][HUMAN] = ceiling
    for venue, group in entry["per_venue"].items():
        ceiling = human_ceiling_for([row for row in rows if row["venue"] == venue], rule, seed)
        if ceiling:
            group["human_ceiling"] = ceiling


def majority_rows(rows: Sequence[dict[str, Any]], policy: str) -> tuple[str, list[dict[str, Any]]] | None:
    """With --samples k: (column name, the rows with each paper's decision replaced by the strict
    majority of its k generations). The model's own column keeps the first generation's decision,
    the single-sample convention of the reference. No majority is no decision, handled like an
    unparsed review under the task's policy (``exclude`` drops those papers from this column)."""
    ks = {(r.get("extra") or {}).get("samples") for r in rows if "majority" in (r.get("extra") or {})}
    if not ks:
        return None
    voted = [{**r, "decision": (r.get("extra") or {}).get("majority") or Decision.UNPARSED.value} for r in rows]
    if policy == "exclude":
        voted = [r for r in voted if r["decision"] != Decision.UNPARSED.value]
    return f"majority of {'/'.join(str(k) for k in sorted(ks))} samples", voted


def generation_counts(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """With --samples k: every generation's decision counted, unparsed and ambiguous ones included."""
    decisions = [d for s in samples for d in (s.get("extra") or {}).get("decisions") or []]
    if not decisions:
        return {}
    return {"generations": {"total": len(decisions), **{d.value: decisions.count(d.value) for d in Decision}}}


def completeness(samples: Sequence[dict[str, Any]], n_papers: int | None) -> dict[str, Any]:
    """How much of the selection has a model answer. A run is complete only when every paper has one;
    failed requests and papers never requested (an interrupted run) leave it INCOMPLETE."""
    answered = sum(1 for s in samples if is_answered(s))
    total = max(n_papers or 0, len(samples))
    return {"n_papers": total, "n_answered": answered, "n_failed": len(samples) - answered,
            "n_missing": total - len(samples), "complete": answered == total}


def score_samples(samples: Sequence[dict[str, Any]], *, label_rules: Sequence[str], metrics: Sequence[Metric],
                  unparsed_policy: str = "wrong", resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  confidence: float = DEFAULT_CONFIDENCE, n_papers: int | None = None) -> dict[str, Any]:
    """Scores of the answered samples only; failed requests are counted in ``n_failed``, never scored.

    Rows are taken in the order of their ids: the bootstrap draws row positions, so the same samples
    read in another order (completion order in samples.jsonl, task order in a run) would otherwise
    give other intervals from `run`, `report` and `compare`."""
    if unparsed_policy not in UNPARSED_POLICIES:
        raise ConfigError(f"unparsed policy {unparsed_policy!r}: valid choices: {', '.join(UNPARSED_POLICIES)}")
    from peerbench.reporting.review_scoring import split_measures

    metrics = split_measures(metrics)[0]  # review measures are scored by score_run, not per label rule
    answered = sorted((s for s in samples if is_answered(s)), key=lambda s: str(s.get("id")))
    result: dict[str, Any] = {
        "primary_label_rule": label_rules[0] if label_rules else None,
        "unparsed_policy": unparsed_policy,
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": confidence},
        "n_samples": len(samples),
        **completeness(samples, n_papers),
        "label_rules": {},
    }
    for rule in label_rules:
        result["label_rules"][rule] = score_rule(answered, rule, metrics, unparsed_policy,
                                                 {"resamples": resamples, "seed": seed, "confidence": confidence})
    return result


def score_rule(answered: list[dict[str, Any]], rule: str, metrics: Sequence[Metric], unparsed_policy: str,
               kwargs: dict[str, Any]) -> dict[str, Any]:
    """One label rule's entry: overall, per venue, and the columns beside the model (the trivial
    baselines, the majority of k samples, the human ceiling)."""
    from peerbench.labels import get_label_rule

    rows = [s for s in answered if s["gold"].get(rule) is not None]
    voted = majority_rows(rows, unparsed_policy)  # before the first samples' exclusions: its own
    excluded = 0
    if unparsed_policy == "exclude":
        kept = [s for s in rows if s.get("decision") in (Decision.ACCEPT, Decision.REJECT)]
        excluded, rows = len(rows) - len(kept), kept
    entry: dict[str, Any] = {
        "description": get_label_rule(rule).description,
        "n_unknown_gold": len(answered) - len(rows) - excluded,
        "n_excluded_unparsed": excluded,
    }
    if not rows:
        return {**entry, "overall": None, "per_venue": {}, "baselines": {}}
    inputs = score_inputs(rows, rule, unparsed_policy)
    entry["overall"] = score_group(inputs, metrics, **kwargs)
    entry["per_venue"] = per_venue_groups(rows, inputs, metrics, kwargs)
    if entry["per_venue"]:
        from peerbench.metrics.rating import unpool

        unpool(entry["overall"])
    gold_share = float(inputs.y_true.mean())
    decision_metrics = [m for m in metrics if not m.needs_proba]
    entry["baselines"] = {
        "always-accept": point_estimates(score_inputs(rows, rule, unparsed_policy, True), decision_metrics),
        f"majority ({'accept' if gold_share >= 0.5 else 'reject'})":
            point_estimates(score_inputs(rows, rule, unparsed_policy, gold_share >= 0.5), decision_metrics),
    }
    if voted:
        entry["baselines"][voted[0]] = point_estimates(score_inputs(voted[1], rule, unparsed_policy),
                                                       decision_metrics)
    add_human_ceiling(entry, rows, rule, kwargs["seed"])
    return entry


def per_venue_groups(rows: list[dict[str, Any]], inputs: ScoreInputs, metrics: Sequence[Metric],
                     kwargs: dict[str, Any]) -> dict[str, Any]:
    """Each venue's group where the rows span several venues (none for one venue)."""
    import numpy as np

    venues = sorted({s["venue"] for s in rows})
    if len(venues) < 2:
        return {}
    venue_of = np.array([s["venue"] for s in rows])
    return {venue: score_group(inputs.subset(venue_of == venue), metrics, **kwargs) for venue in venues}


def score_run(samples: Sequence[dict[str, Any]], config: dict[str, Any], metric_objects: Sequence[Any], *,
              resamples: int, seed: int, papers: dict[str, Any] | None = None,
              review_options: dict[str, Any] | None = None,
              full_lines: Callable[[set[str]], dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """metrics.json for a run: every label rule its config names, the review measures (``review``:
    ``papers`` by key where the caller has them, else read back from the dataset), and the summary.

    Samples held as scoring holds them (pipeline.lines.for_scoring) carry no review text; the review
    measures read theirs back with ``full_lines`` (the run directory's stored lines by key)."""
    from peerbench.reporting.review_scoring import score_reviews, split_measures

    policy = (config.get("task_definition") or {}).get("unparsed", "wrong")
    metric_objects, review_measures = split_measures(metric_objects)
    metrics = score_samples(samples, label_rules=config["label_rules"], metrics=metric_objects,
                            unparsed_policy=policy, resamples=resamples, seed=seed, n_papers=config.get("n_papers"))
    review = score_reviews(answered_in_full(samples, full_lines) if review_measures else [], config,
                           review_measures, papers=papers, options=review_options, resamples=resamples, seed=seed)
    if review is not None:
        metrics["review"] = review
    metrics.update(summary_of(samples))
    metrics["task"], metrics["backend"], metrics["model"] = config["task"], config["backend"], config["model"]
    metrics["choices"] = config.get("choices")
    if config.get("protocol"):
        from peerbench.reporting.protocol_summary import protocol_summary

        metrics["protocol"] = protocol_summary(samples, config)
    add_cited(metrics, (config.get("task_definition") or {}).get("cited") or [])
    return metrics


def answered_in_full(samples: Sequence[dict[str, Any]],
                     full_lines: Callable[[set[str]], dict[str, dict[str, Any]]] | None) -> list[dict[str, Any]]:
    """The answered samples with their review text: as given, or read back whole where they were
    held without it."""
    answered = [s for s in samples if is_answered(s)]
    if full_lines is None or all("completion" in s for s in answered):
        return answered
    whole = full_lines({s["id"] for s in answered})
    return [whole.get(s["id"], s) for s in answered]


def echo_counts(samples: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Reviews that copied 50+ words of their prompt (peerbench.echo), and how many of them the whole
    text, copied words included, would have given another decision."""
    echoed = [s for s in samples if s.get("echo")]
    return {"reviews": len(echoed),
            "read_otherwise": sum(1 for s in echoed if s["echo"].get("whole_text_decision") != s.get("decision"))}


def add_cited(metrics: dict[str, Any], cited: Sequence[dict[str, Any]]) -> None:
    """The task's cited rows (published figures, not computed from these data) beside the label
    rule they were published under, apart from the baselines computed here."""
    for row in cited:
        entry = metrics["label_rules"].get(row["label_rule"])
        if entry and entry.get("overall"):
            entry.setdefault("cited", {})[row["name"]] = {"source": row["source"], "metrics": dict(row["metrics"])}


def summary_of(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Truncation, latency and token totals, for the table under the metrics."""
    from peerbench.backends.logprobs import p_accept_source

    cut = [s["truncation"].get("cut_chars", 0) for s in samples if s.get("truncation")]
    cuts = [c for c in cut if c > 0]
    methods = sorted({s["truncation"].get("method") or "" for s in samples if s.get("truncation")})
    latencies = [s["latency_s"] for s in samples if not s.get("cached") and s.get("latency_s") is not None]
    errors = Counter(s["error"] for s in samples if s.get("error"))
    costs = [s["extra"]["cost_usd"] for s in samples if (s.get("extra") or {}).get("cost_usd") is not None]
    asked = [s for s in samples if s.get("rating_scale") and is_answered(s)]  # reviews asked for a rating
    ratings = {"ratings": {"asked": len(asked), "given": sum(s.get("rating") is not None for s in asked),
                           "scale": asked[0]["rating_scale"]}} if asked else {}
    return {
        **ratings,
        **generation_counts(samples),
        "failures": {"count": sum(errors.values()),
                     "most_common": [{"error": e, "papers": n} for e, n in errors.most_common(3)]},
        "truncation": {"method": ",".join(m for m in methods if m), "papers_truncated": len(cuts),
                       # over the papers that were cut: how much of a cut paper the model did not see
                       "mean_cut_chars": (sum(cuts) / len(cuts)) if cuts else 0.0,
                       "max_cut_chars": max(cut, default=0)},
        "timing": {"mean_latency_s": (sum(latencies) / len(latencies)) if latencies else None,
                   "cached_samples": sum(1 for s in samples if s.get("cached"))},
        "tokens": {"prompt": sum(s.get("prompt_tokens") or 0 for s in samples),
                   "completion": sum(s.get("completion_tokens") or 0 for s in samples),
                   "thinking": sum((s.get("extra") or {}).get("thinking_tokens") or 0 for s in samples)},
        "cost_usd": round(sum(costs), 6) if costs else None,
        "decisions": {d.value: sum(1 for s in samples if s.get("decision") == d.value) for d in Decision},
        # reviews that copied 50+ words of their prompt back (peerbench.echo): read without those words
        "echoes": echo_counts(samples),
        "p_accept_source": p_accept_source(samples),
    }


def bootstrap_settings(run_dir: str | Path, resamples: int | None, seed: int | None) -> tuple[int, int]:
    """The bootstrap a rescoring uses: what the caller asks, else what the run itself used (its
    metrics.json), so that `report` and `compare` print the run's own intervals."""
    import json

    stored: dict[str, Any] = {}
    try:
        stored = json.loads((Path(run_dir) / "metrics.json").read_text()).get("bootstrap") or {}
    except (OSError, ValueError, AttributeError):
        pass
    return (resamples if resamples is not None else int(stored.get("resamples", DEFAULT_RESAMPLES)),
            seed if seed is not None else int(stored.get("seed", 0)))


def rescore(run_dir: str | Path, *, resamples: int | None = None, seed: int | None = None,
            review_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a run directory's samples afresh (works on an interrupted run too)."""
    from peerbench.pipeline.store import read_run

    resamples, seed = bootstrap_settings(run_dir, resamples, seed)
    config, samples = read_run(run_dir, scoring_only=True)  # without the reviews' text: all scoring reads
    metrics = score_stored(run_dir, config, samples, resamples=resamples, seed=seed, review_options=review_options)
    return with_judgements(run_dir, metrics)


def with_judgements(run_dir: str | Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """The run's metrics with the figures of every judgement of its reviews (peerbench.judging), if any."""
    from peerbench.judging.stage import read_judgements

    judgements = read_judgements(run_dir)
    return {**metrics, "judgements": judgements} if judgements else metrics


def selected(config: dict[str, Any], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples of the selection the last run into the directory scored (all, for older runs)."""
    keys = config.get("paper_keys")
    if keys is None:
        return samples
    wanted = set(keys)
    return [sample for sample in samples if sample["id"] in wanted]


def score_stored(run_dir: str | Path, config: dict[str, Any], samples: list[dict[str, Any]], *, resamples: int,
                 seed: int, review_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json for samples already read from a run directory: the decision metrics its config
    names, and every registered review measure (they need no request, so a run made before one
    existed, or before its plugin was installed, is measured too)."""
    from peerbench.metrics.review import ReviewMeasure
    from peerbench.registry import registries

    samples = selected(config, samples)  # the selection of the last run into this directory, as it scored it
    if not samples:
        raise ConfigError(f"{run_dir}: no samples yet")
    regs = registries()
    metric_objects = [regs.metrics.get(n).value for n in config.get("metrics") or regs.metrics.names()]
    metric_objects = [m for m in metric_objects if not isinstance(m, ReviewMeasure)]
    metric_objects += [e.value for e in regs.metrics.entries() if isinstance(e.value, ReviewMeasure)]
    from peerbench.pipeline.store import RunDir

    return score_run(samples, config, metric_objects, resamples=resamples, seed=seed, review_options=review_options,
                     full_lines=RunDir(run_dir).read_full)
