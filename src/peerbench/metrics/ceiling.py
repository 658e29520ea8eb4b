"""The human ceiling: how good one human reviewer is on the same papers.

Leave one reviewer out, and score that reviewer's rating as the model's is scored: against the
mean of the other reviewers' ratings (the rating metrics of :mod:`peerbench.metrics.rating`) and
against the real decision. Shown beside the trivial baselines, on every task whose papers carry
per-review ratings (``Sample.recommendations``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from peerbench.metrics import rating
from peerbench.metrics.rating import (  # noqa: F401  (HUMAN: the column's name, kept here too)
    HUMAN,
    kendall,
    pairwise_accuracy,
    row_kendall,
    row_pairwise,
    row_spearman,
)

CEILING_DRAWS = 200
CEILING_DRAW_BUDGET = 4_000_000  # papers x draws: above 20,000 papers, fewer draws (draws_for)


DRAW_CHUNK_ENTRIES = 1_000_000  # draws x papers held at once


def _draws(recommendations: Sequence[Sequence[float]], seed: int, draws: int):
    """``draws`` x papers: one reviewer's rating, drawn uniformly per paper, and the mean of the others'."""
    import numpy as np

    blocks = list(_draw_blocks(recommendations, seed, draws))
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def _draw_blocks(recommendations: Sequence[Sequence[float]], seed: int, draws: int):
    """``draws`` x papers, a block of draws at a time: one reviewer's rating, drawn uniformly per
    paper, and the mean of the others'; with, above a few hundred papers, the level codes of both
    (:mod:`peerbench.metrics.tau`), gathered from each paper's few possible values instead of found
    in the (draws x papers) matrices. The blocks are the rows one seeded draw of all would give."""
    import numpy as np

    counts = np.array([len(r) for r in recommendations])
    table = np.full((len(counts), counts.max()), np.nan)
    for row, ratings in enumerate(recommendations):
        table[row, :len(ratings)] = ratings
    rows, totals = np.arange(len(counts)), np.nansum(table, 1)
    coded = None
    if len(counts) > rating.PAIR_MATRIX_LIMIT:
        from peerbench.metrics import tau

        # every value a draw can give a paper, each the same float as in held and others below
        coded = [tau.levels(values) for values in (table, (totals[:, None] - table) / (counts - 1)[:, None])]
        coded = None if any(c is None for c in coded) else coded
    rng = np.random.default_rng(seed)
    step = max(1, DRAW_CHUNK_ENTRIES // len(counts))
    for start in range(0, draws, step):
        picked = (rng.random((min(step, draws - start), len(counts))) * counts).astype(int)
        held = table[rows, picked]
        yield held, (totals - held) / (counts - 1), coded and [(codes[rows, picked], k) for codes, k in coded]


def _pair_values(human, model, coded=None) -> tuple[list[float | None], list[float | None]]:
    """(Kendall's tau-b, pairwise accuracy) of each draw: pair matrices for a few hundred papers,
    level tables above (:mod:`peerbench.metrics.tau`), scipy per draw for too many distinct levels."""
    if human.shape[1] <= rating.PAIR_MATRIX_LIMIT:
        return list(row_kendall(human, model)), list(row_pairwise(human, model))
    if coded is not None:
        import numpy as np

        from peerbench.metrics import tau

        (human_codes, kh), (model_codes, km) = coded
        cells = np.where((human_codes >= 0) & (model_codes >= 0), human_codes * km + model_codes, -1)
        counts = tau.pair_counts(cells, (kh, km))
        return list(tau.tau_from(counts)), list(tau.pairwise_from(counts))
    return [kendall(h, m) for h, m in zip(human, model)], [pairwise_accuracy(h, m) for h, m in zip(human, model)]


def _spearman(held, others, coded=None):
    if coded is None:
        return row_spearman(held, others)
    from peerbench.metrics import tau

    return rating.spearman_of_ranks(*(tau.level_ranks(codes, k) for codes, k in coded))


def draws_for(papers: int) -> int:
    """CEILING_DRAWS, fewer above CEILING_DRAW_BUDGET / 20 papers (200,000 papers: 20 draws): the
    mean over draws of a statistic over n papers varies less the larger n is, while each draw costs n."""
    return min(CEILING_DRAWS, max(20, CEILING_DRAW_BUDGET // max(1, papers)))


def _mean_over_draws(values) -> float | None:
    import numpy as np

    values = np.array([np.nan if v is None else v for v in values], dtype=float)
    return None if np.isnan(values).all() else float(np.nanmean(values))


def _decision_ceiling(recommendations: Sequence[Sequence[float]], gold) -> dict[str, float]:
    """One reviewer's rating against the decision, exactly in expectation over which reviewer: each
    review weighs 1/(the paper's reviews), so every paper counts once (a pooled weighted AUROC is
    the mean AUROC of a uniformly drawn reviewer per paper, and so is balanced accuracy)."""
    import numpy as np

    from peerbench.metrics.decision import weighted_auroc

    gold = np.asarray(gold, dtype=bool)
    if len(np.unique(gold)) < 2:
        return {}
    ratings = np.concatenate([np.asarray(r, dtype=float) for r in recommendations])
    weights = np.concatenate([np.full(len(r), 1 / len(r)) for r in recommendations])
    labels = np.repeat(gold, [len(r) for r in recommendations])
    # scikit-learn's balanced_accuracy_score with sample weights, for every threshold at once
    said_accept = ratings[None, :] >= np.unique(ratings)[:, None]
    recall = (weights * (said_accept & labels)).sum(1) / weights[labels].sum()
    specificity = (weights * (~said_accept & ~labels)).sum(1) / weights[~labels].sum()
    scores = dict(zip(np.unique(ratings).tolist(), ((recall + specificity) / 2).tolist()))
    threshold = max(scores, key=lambda t: (round(scores[t], 12), -t))  # ties: the lowest, float noise aside
    return {"rating_auroc": float(weighted_auroc(labels, ratings, weights[None, :])[0]),
            "balanced_accuracy": float(scores[threshold]), "balanced_accuracy_threshold": threshold}


def human_ceiling(recommendations: Sequence[Sequence[float]], gold: Sequence[bool] | None = None, *,
                  seed: int = 0, draws: int | None = None) -> dict[str, float]:
    """How well one human reviewer does, leaving that reviewer out of the target.

    Papers with at least two ratings count. Against the others' mean rating (Spearman, Kendall,
    pairwise accuracy, MAE): one reviewer is drawn per paper, ``draws`` times (seeded), and the
    values are averaged over the draws (``draws``, by default :func:`draws_for` the papers: 200 up
    to 20,000 papers). Against ``gold`` (the real decision): AUROC of that
    reviewer's rating, and the balanced accuracy of the best threshold ``rating >= t``, chosen on
    these same papers (an optimistic ceiling; ``balanced_accuracy_threshold`` says which t).
    """
    keep = [i for i, r in enumerate(recommendations) if r is not None and len(r) >= 2]
    if len(keep) < 2:
        return {}
    rated = [tuple(map(float, recommendations[i])) for i in keep]
    draws = draws if draws is not None else draws_for(len(keep))
    out: dict[str, float] = {"n": len(keep), "draws": draws}
    out.update(_against_the_others(tuple(rated), seed, draws))
    if gold is not None:
        out.update(_decision_ceiling(rated, [gold[i] for i in keep]))
    return out


@functools.lru_cache(maxsize=4)  # each label rule of a run asks again for the same papers' ratings
def _against_the_others(rated: tuple[tuple[float, ...], ...], seed: int, draws: int) -> dict[str, float]:
    """The held-out reviewer against the others' mean, averaged over the draws."""
    per_draw: dict[str, list[Any]] = {"rating_spearman": [], "rating_kendall": [], "rating_pairwise_accuracy": [],
                                      "rating_mae": []}
    for held, others, coded in _draw_blocks(rated, seed, draws):
        taus, pairwise = _pair_values(others, held, coded and coded[::-1])
        per_draw["rating_spearman"].extend(_spearman(held, others, coded))
        per_draw["rating_kendall"].extend(taus)
        per_draw["rating_pairwise_accuracy"].extend(pairwise)
        per_draw["rating_mae"].extend(abs(held - others).mean(1))
    values = {name: _mean_over_draws(values) for name, values in per_draw.items()}
    return {name: value for name, value in values.items() if value is not None}


CEILING_MIN_PAPERS = 10  # fewer papers with 2+ ratings: no ceiling (it carries no interval)


def human_ceiling_for(rows: Sequence[dict[str, Any]], rule: str, seed: int) -> dict[str, float]:
    """The ceiling on a label rule's scored samples: against the decision only under ``decision``
    (a rule made from the ratings holds the held-out reviewer's own rating); nothing where the
    rated papers span venues, whose rating scales need not match (see each venue's own), or where
    fewer than CEILING_MIN_PAPERS papers have two ratings. Where the run asked the model for a
    rating, the ceiling is over the papers the model rated, the papers its own rating metrics are
    over: a model that rates only the easy papers is not set beside humans on all of them."""
    rated = [row for row in rows if len(row.get("recommendations") or ()) >= 2]
    asked = any(row.get("rating_scale") for row in rows)
    if asked:
        rated = [row for row in rated if row.get("rating") is not None]
    if len({row["venue"] for row in rated}) != 1 or len(rated) < CEILING_MIN_PAPERS:
        return {}
    gold = [bool(row["gold"][rule]) for row in rated] if rule == "decision" else None
    ceiling = human_ceiling([row["recommendations"] for row in rated], gold, seed=seed)
    return {**ceiling, "on_model_rated": True} if ceiling and asked else ceiling
