"""Print the figures of docs/label-audit.md from the packaged peerread95 facts.

    python scripts/label_audit.py            # the markdown block the doc embeds
A test checks that the doc holds exactly this output, so no figure there is typed by hand.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from peerbench.datasets.peerread import manifest
from peerbench.metrics import ScoreInputs
from peerbench.metrics.decision import BUILTIN_METRICS
from peerbench.reporting.scoring import point_estimates

DECISION_METRICS = [m for m in BUILTIN_METRICS if not m.needs_proba]
SHOWN = ("f1", "accuracy", "precision", "recall", "specificity", "balanced_accuracy", "mcc", "pred_accept_rate")


def scores(y_true: list[bool], y_pred: list[bool]) -> dict[str, float]:
    t, p = np.array(y_true, dtype=bool), np.array(y_pred, dtype=bool)
    return point_estimates(ScoreInputs(t, p, np.full(len(t), np.nan), np.zeros(len(t), dtype=bool)),
                           DECISION_METRICS)


def row(name: str, values: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{values[k]:.3f}" for k in SHOWN) + " |"


def main() -> None:
    facts = list(manifest().values())
    lines = ["| venue | papers | positive by recommendation>=4 | no scored review | accepted (real decision) |",
             "|---|---:|---:|---:|---:|"]
    for venue in sorted({f["venue"] for f in facts}):
        group = [f for f in facts if f["venue"] == venue]
        accepted = sum(1 for f in group if f["accepted"]) if group[0]["accepted"] is not None else None
        lines.append(f"| {venue} | {len(group)} | {sum(f['label'] for f in group)} | "
                     f"{sum(1 for f in group if f['n_reviews'] == 0)} | {'—' if accepted is None else accepted} |")
    lines.append(f"| all | {len(facts)} | {sum(f['label'] for f in facts)} | "
                 f"{sum(1 for f in facts if f['n_reviews'] == 0)} | {sum(1 for f in facts if f['accepted'])} |")
    iclr = [f for f in facts if f["venue"] == "iclr_2017"]
    lines += ["", "ICLR 2017 (78 papers): mean official RECOMMENDATION (1-10) by real decision", "",
              "| decision | papers | scored reviews | min | mean | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, accepted in (("accepted", True), ("rejected", False)):
        group = [f for f in iclr if f["accepted"] is accepted]
        means = [f["mean_recommendation"] for f in group]
        lines.append(f"| {name} | {len(group)} | {sum(f['n_reviews'] for f in group)} | {min(means):.2f} | "
                     f"{float(np.mean(means)):.2f} | {max(means):.2f} |")
    table = Counter((f["label"], f["accepted"]) for f in iclr)
    lines += ["", "ICLR 2017 (78 papers): score rule against the real decision", "",
              "| | accepted | rejected |", "|---|---:|---:|",
              f"| recommendation>=4 positive | {table[(True, True)]} | {table[(True, False)]} |",
              f"| recommendation>=4 negative | {table[(False, True)]} | {table[(False, False)]} |"]
    gold = [f["label"] for f in facts]
    pos = [f for f in facts if f["label"]]
    neg = [f for f in facts if not f["label"]]
    published = [True] * 74 + [False] * 6 + [True] * 12 + [False] * 3
    published_gold = [True] * len(pos) + [False] * len(neg)
    lines += ["", "Scored against recommendation>=4 (95 papers):", "",
              "| reviewer | " + " | ".join(SHOWN) + " |", "|---|" + "---:|" * len(SHOWN),
              row("always-accept", scores(gold, [True] * len(gold))),
              row("always-reject", scores(gold, [False] * len(gold))),
              row("published distilled model (TP 74, FP 12, FN 6, TN 3)", scores(published_gold, published))]
    iclr_decision = [bool(f["accepted"]) for f in iclr]
    lines += ["", "Scored against the real decision (ICLR 2017, 78 papers):", "",
              "| reviewer | " + " | ".join(SHOWN) + " |", "|---|" + "---:|" * len(SHOWN),
              row("always-accept", scores(iclr_decision, [True] * len(iclr))),
              row("always-reject", scores(iclr_decision, [False] * len(iclr))),
              row("the score rule itself as a reviewer", scores(iclr_decision, [f["label"] for f in iclr]))]
    lines += ["", "The mean score as a reviewer of the real ICLR decision, by threshold (agreement = accuracy):", "",
              "| rule | predicted accept | agreement | balanced_accuracy | mcc |", "|---|---:|---:|---:|---:|"]
    for threshold in (4, 5, 6, 7):
        values = scores(iclr_decision, [f["mean_recommendation"] >= threshold for f in iclr])
        lines.append(f"| recommendation>={threshold} | {values['pred_accept_rate']:.3f} | {values['accuracy']:.3f} | "
                     f"{values['balanced_accuracy']:.3f} | {values['mcc']:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
