"""The report's figures, drawn with matplotlib (Agg, no display) and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from peerbench.errors import MissingDependency


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency("matplotlib", "report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def reliability_diagram(y_true: Sequence[bool], p_accept: Sequence[float], bins: int = 10) -> bytes:
    """Gold accept rate per P(accept) bin against the diagonal, with how many papers each bin holds."""
    import numpy as np
    from sklearn.calibration import calibration_curve

    plt = _pyplot()
    y, p = np.asarray(y_true, dtype=int), np.asarray(p_accept, dtype=float)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5.6), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if len(y):
        frac, mean = calibration_curve(y, p, n_bins=bins, strategy="uniform")
        top.plot(mean, frac, marker="o", label="this run")
    top.set_ylabel("gold accept rate")
    top.set_ylim(-0.02, 1.02)
    top.legend(loc="upper left")
    top.set_title("Reliability diagram")
    bottom.hist(p, bins=bins, range=(0, 1), color="tab:blue")
    bottom.set_xlabel("P(accept)")
    bottom.set_ylabel("papers")
    return _png(fig)


def p_accept_histogram(y_true: Sequence[bool], p_accept: Sequence[float], bins: int = 20) -> bytes:
    import numpy as np

    plt = _pyplot()
    y, p = np.asarray(y_true, dtype=bool), np.asarray(p_accept, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.hist([p[y], p[~y]], bins=bins, range=(0, 1), label=["gold accept", "gold reject"],
            color=["tab:green", "tab:red"], alpha=0.8)
    ax.set_xlabel("P(accept)")
    ax.set_ylabel("papers")
    ax.set_title("P(accept) by gold class")
    ax.legend()
    return _png(fig)


def confusion_matrix_plot(confusion: dict[str, int]) -> bytes:
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    matrix = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ConfusionMatrixDisplay(matrix, display_labels=["reject", "accept"]).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix")
    return _png(fig)


def accept_rates_plot(groups: dict[str, dict[str, Any]]) -> bytes:
    """Predicted against gold accept rate, overall and per venue."""
    import numpy as np

    plt = _pyplot()
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
    return _png(fig)
