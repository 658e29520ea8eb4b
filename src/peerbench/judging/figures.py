"""A judgement's figures, from its per-paper lines (complete papers only: a paper with a failed
judge request waits for the rerun that completes it).

Points (Liang et al.'s hit rates), per paper, then averaged over papers with seeded bootstrap
intervals (:func:`peerbench.metrics.review.aggregate`):

- ``points_model_matched``: the share of the model's points that some human review raised;
- ``points_human_raised``: the share of each human review's points that the model raised
  (averaged over the paper's human reviews);
- the same two for one human review in the model's place against the other human reviews (the
  leave-one-out ceiling), on the same papers, with the paired difference model - human;
- ``points_model_matched_shuffled``: the model's points against the human reviews of another
  paper; a judge that finds many matches there is matching topics, not points, and is flagged.

Aspects: the 1-5 grades of the model's review, beside the mean grade of the paper's human reviews
by the same judge, and the reviews' lengths in words beside them. The judge itself: its agreement
with itself (the model's rubric request asked again with another seed) and, where the data carry
the reviewers' own numbers, how its grades of the human reviews rank against those numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from peerbench.judging.parse import ASPECTS

SHUFFLE_LIMIT = 0.05  # a shuffled hit rate above this is no longer "near zero" (Liang et al.: below 1%)
Values = dict[str, float | None]


def _share(matched: set[int], size: int) -> float | None:
    return len(matched) / size if size else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _pair(between: Mapping[str, Any], i: int, j: int) -> tuple[list[int], list[int]] | None:
    """Matched indices of human i and of human j, whichever order the line stores the pair in."""
    if f"{i}-{j}" in between:
        return between[f"{i}-{j}"]
    found = between.get(f"{j}-{i}")
    return None if found is None else (found[1], found[0])


def points_values(part: Mapping[str, Any]) -> tuple[Values, Values, Values]:
    """(the model's, the leave-one-out human's, the shuffle's) values of one paper; None where an
    answer needed is missing or unreadable, or a share has no points to be taken of."""
    model, humans, vs = part["model"], part["humans"], part["model_vs_humans"]
    out_model: Values = {}
    out_human: Values = {}
    out_shuffle: Values = {}
    if model is not None and humans and all(h is not None for h in humans) and all(m is not None for m in vs):
        out_model["points_model_matched"] = _share({a for m in vs for a in m[0]}, len(model))
        out_model["points_human_raised"] = _mean([_share(set(m[1]), len(h)) for m, h in zip(vs, humans)])
    pairs = {(i, j): _pair(part["between_humans"], i, j) for i in range(len(humans)) for j in range(len(humans))
             if i != j}
    if len(humans) >= 2 and all(h is not None for h in humans) and all(p is not None for p in pairs.values()):
        matched, raised = [], []
        for i, own in enumerate(humans):
            others = [j for j in range(len(humans)) if j != i]
            matched.append(_share({a for j in others for a in pairs[(i, j)][0]}, len(own)))
            raised.append(_mean([_share(set(pairs[(i, j)][1]), len(humans[j])) for j in others]))
        out_human = {"points_model_matched": _mean(matched), "points_human_raised": _mean(raised)}
    shuffle = part.get("shuffle")
    if shuffle and model is not None and all(m is not None for m in shuffle["model_vs_humans"]):
        out_shuffle["points_model_matched_shuffled"] = _share({a for m in shuffle["model_vs_humans"] for a in m[0]},
                                                              len(model))
    counts = {"points_per_review": float(len(model)) if model is not None else None}
    human_counts = [len(h) for h in humans if h is not None]
    return ({**out_model, **counts}, {**out_human, "points_per_review": _mean(human_counts)}, out_shuffle)


def grade_values(grades: Mapping[str, int] | None) -> Values:
    if grades is None:
        return {}
    return {**{f"aspect_{name}": float(grades[name]) for name in ASPECTS},
            "aspect_mean": sum(grades[name] for name in ASPECTS) / len(ASPECTS)}


def aspect_values(part: Mapping[str, Any]) -> tuple[Values, Values]:
    """(the model's grades, the mean grades of the paper's human reviews) of one paper."""
    humans = [grade_values(g) for g in part["humans"] if g is not None]
    names = list(grade_values({name: 1 for name in ASPECTS}))
    return grade_values(part["model"]), ({name: _mean([h[name] for h in humans]) for name in names} if humans else {})


def length_values(line: Mapping[str, Any]) -> tuple[Values, Values]:
    lengths = line["length_words"]
    return {"length_words": float(lengths["model"])}, {"length_words": _mean(lengths["humans"])}


def agreement(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The judge against itself: the model's rubric grades asked twice (another seed)."""
    pairs = [(line["aspects"]["model"], line["aspects"]["repeat"]) for line in lines
             if line.get("aspects") and line["aspects"].get("repeat") and line["aspects"].get("model")]
    if not pairs:
        return None
    same = [first[a] == second[a] for first, second in pairs for a in ASPECTS]
    diffs = [abs(first[a] - second[a]) for first, second in pairs for a in ASPECTS]
    return {"n_papers": len(pairs), "exact": sum(same) / len(same), "mean_abs_difference": sum(diffs) / len(diffs),
            "per_aspect": {a: sum(f[a] == s[a] for f, s in pairs) / len(pairs) for a in ASPECTS}}


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(xs), "rho": None}
    if len(xs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
        from scipy.stats import spearmanr

        out["rho"] = float(spearmanr(xs, ys).statistic)
    return out


def against_humans(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How the judge's mean grade of each human review ranks against that reviewer's confidence and
    recommendation, and against the paper's decision (Spearman, pooled over the human reviews)."""
    rows = []
    for line in lines:
        grades = (line.get("aspects") or {}).get("humans") or []
        ratings = line.get("human_ratings") or [{} for _ in grades]
        for index, grade in enumerate(grades):
            if grade is not None:
                rows.append((grade_values(grade)["aspect_mean"], ratings[index] if index < len(ratings) else {},
                             line.get("accepted")))
    if not rows:
        return None
    out = {}
    for name in ("confidence", "recommendation"):
        kept = [(g, r[name]) for g, r, _ in rows if r.get(name) is not None]
        out[name] = _spearman([g for g, _ in kept], [v for _, v in kept])
    kept = [(g, float(a)) for g, _, a in rows if a is not None]
    out["decision"] = _spearman([g for g, _ in kept], [v for _, v in kept])
    return out


def judge_metrics(lines: Sequence[Mapping[str, Any]], config: Mapping[str, Any], counts: Mapping[str, Any], *,
                  resamples: int, seed: int, confidence: float = 0.95) -> dict[str, Any]:
    """The judgement's metrics.json."""
    from peerbench.metrics.review import aggregate

    done = [line for line in lines if line.get("complete")]
    kwargs = {"resamples": resamples, "seed": seed, "confidence": confidence}
    failures = [f for line in lines for f in line.get("parse_failures") or []]
    out: dict[str, Any] = {
        "judge": {k: config.get(k) for k in ("judge_id", "backend", "model", "options", "generation", "rubric",
                                             "max_points", "paper_chars", "agreement_papers", "prompts")},
        **counts, "n_lines": len(lines), "n_complete_papers": len(done),
        "n_incomplete_papers": len(lines) - len(done) + max(0, counts.get("n_judged", len(lines)) - len(lines)),
        "n_failed_requests": sum(len(line.get("failed") or []) for line in lines),
        "n_requests": sum(line.get("requests", 0) for line in lines),
        "parse_failures": {"count": len(failures), "examples": failures[:5]},
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": confidence}, "flags": []}
    out["complete"] = out["n_incomplete_papers"] == 0
    if config.get("rubric") in ("points", "all"):
        with_points = [line for line in done if line.get("points")]
        values = [points_values(line["points"]) for line in with_points]
        length = [length_values(line) for line in with_points]
        shuffled = aggregate([v[2] for v in values], None, **kwargs)
        out["points"] = {"n_papers": len(with_points), "n_with_two_humans": sum(1 for line in with_points
                                                                                 if line["n_humans"] >= 2),
                         "measures": {**aggregate([v[0] for v in values], [v[1] for v in values], **kwargs),
                                      **aggregate([m for m, _ in length], [h for _, h in length], **kwargs)},
                         "shuffle": shuffled}
        rate = (shuffled.get("points_model_matched_shuffled") or {}).get("value")
        if rate is not None and rate > SHUFFLE_LIMIT:
            out["flags"].append(f"shuffle control: the judge matched {rate:.1%} of the model's points to another "
                                f"paper's human reviews (near zero expected, above {SHUFFLE_LIMIT:.0%} flagged): "
                                "its matches follow topics, not points; do not quote its hit rates")
    if config.get("rubric") in ("aspects", "all"):
        with_aspects = [line for line in done if line.get("aspects")]
        values = [aspect_values(line["aspects"]) for line in with_aspects]
        length = [length_values(line) for line in with_aspects]
        out["aspects"] = {"n_papers": len(with_aspects),
                          "measures": {**aggregate([m for m, _ in values], [h for _, h in values], **kwargs),
                                       **aggregate([m for m, _ in length], [h for _, h in length], **kwargs)},
                          "agreement": agreement(with_aspects), "against_humans": against_humans(with_aspects)}
    return out
