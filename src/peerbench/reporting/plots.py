"""The report's figures, drawn with matplotlib (Agg, no display) and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from peerbench.errors import MissingDependency


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), or MissingDependency naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency("matplotlib", "report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes, closed afterwards: how every peerbench figure (and a
    plugin's, such as distill's loss curve) is written, at one size and resolution."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()


def reliability_diagram(y_true: Sequence[bool], p_accept: Sequence[float], bins: int = 10) -> bytes:
    """Gold accept rate per P(accept) bin against the diagonal, with how many papers each bin holds:
    the bins of the ECE in metrics.json (``metrics.decision.reliability_bins``), not a second binning."""
    from peerbench.metrics.decision import reliability_bins

    plt = pyplot()
    rows = reliability_bins(y_true, p_accept, bins) if len(y_true) else []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5.6), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if rows:
        top.plot([r[2] for r in rows], [r[3] for r in rows], marker="o", label="this run")
    top.set_ylabel("gold accept rate")
    top.set_ylim(-0.02, 1.02)
    top.legend(loc="upper left")
    top.set_title("Reliability diagram")
    bottom.bar([(r[0] + 0.5) / bins for r in rows], [r[1] for r in rows], width=1 / bins, color="tab:blue")
    bottom.set_xlabel("P(accept)")
    bottom.set_ylabel("papers")
    return figure_png(fig)


def reliability_overlay(curves: dict[str, tuple[Sequence[bool], Sequence[float]]], bins: int = 10) -> bytes:
    """Several runs' reliability curves on one set of axes (a leaderboard's models), each from the same
    bins as its ECE; the legend says how many papers each curve rests on."""
    from peerbench.metrics.decision import reliability_bins

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for label, (y_true, p_accept) in curves.items():
        rows = reliability_bins(y_true, p_accept, bins)
        ax.plot([r[2] for r in rows], [r[3] for r in rows], marker="o", label=f"{label} (n={len(y_true)})")
    ax.set_xlabel("mean P(accept) in bin")
    ax.set_ylabel("gold accept rate")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Reliability diagrams")
    ax.legend(loc="upper left", fontsize="small")
    return figure_png(fig)


def p_accept_histogram(y_true: Sequence[bool], p_accept: Sequence[float], bins: int = 20) -> bytes:
    import numpy as np

    plt = pyplot()
    y, p = np.asarray(y_true, dtype=bool), np.asarray(p_accept, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.hist([p[y], p[~y]], bins=bins, range=(0, 1), label=["gold accept", "gold reject"],
            color=["tab:green", "tab:red"], alpha=0.8)
    ax.set_xlabel("P(accept)")
    ax.set_ylabel("papers")
    ax.set_title("P(accept) by gold class")
    ax.legend()
    return figure_png(fig)


def confusion_matrix_plot(confusion: dict[str, int]) -> bytes:
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    matrix = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ConfusionMatrixDisplay(matrix, display_labels=["reject", "accept"]).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix")
    return figure_png(fig)


def accept_rates_plot(groups: dict[str, dict[str, Any]]) -> bytes:
    """Predicted against gold accept rate, overall and per venue."""
    import numpy as np

    plt = pyplot()
    names = list(groups)
    pred = [groups[n]["metrics"]["pred_accept_rate"]["value"] for n in names]
    gold = [groups[n]["metrics"]["gold_accept_rate"]["value"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.4))
    ax.bar(x - 0.2, pred, width=0.4, label="predicted")
    ax.bar(x + 0.2, gold, width=0.4, label="gold")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accept rate")
    ax.set_title("Predicted vs gold accept rate")
    ax.legend(loc="lower right")
    return figure_png(fig)
