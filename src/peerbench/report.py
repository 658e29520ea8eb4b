"""Rich tables for a run's metrics: the label rule in the title, intervals, and the trivial
baselines beside every number, so a skewed benchmark cannot flatter a reviewer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

SHOWN = ("f1", "accuracy", "precision", "recall", "specificity", "balanced_accuracy", "mcc",
         "pred_accept_rate", "gold_accept_rate", "parse_failure_rate", "auroc", "brier")
VENUE_COLUMNS = ("f1", "accuracy", "balanced_accuracy", "mcc", "pred_accept_rate", "gold_accept_rate")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def rule_table(metrics: dict[str, Any], rule: str, entry: dict[str, Any]) -> Table:
    overall = entry["overall"]
    confidence = int(round(metrics["bootstrap"]["confidence"] * 100))
    title = (f"{metrics.get('task', '')} · {metrics.get('backend', '')}:{metrics.get('model', '')} · "
             f"gold label: {rule} (n={overall['n']})")
    table = Table(title=title, caption=entry["description"], title_justify="left")
    table.add_column("metric", no_wrap=True, min_width=18)
    table.add_column("value", justify="right")
    table.add_column(f"{confidence}% CI", justify="right")
    baselines = entry.get("baselines", {})
    for name in baselines:
        table.add_column(name, justify="right", style="dim")
    for name in SHOWN:
        if name not in overall["metrics"]:
            continue
        m = overall["metrics"][name]
        table.add_row(name, _fmt(m["value"]), _ci(m["ci"]), *(_fmt(b.get(name)) for b in baselines.values()))
    return table


def venue_table(entry: dict[str, Any]) -> Table | None:
    per_venue = entry.get("per_venue") or {}
    if not per_venue:
        return None
    table = Table(title="per venue", title_justify="left")
    table.add_column("venue", no_wrap=True)
    table.add_column("n", justify="right")
    for name in VENUE_COLUMNS:
        table.add_column(name, justify="right")
    for venue, group in per_venue.items():
        cells = []
        for name in VENUE_COLUMNS:
            m = group["metrics"].get(name)
            cells.append("—" if m is None else f"{m['value']:.3f} {_ci(m['ci'])}")
        table.add_row(venue, str(group["n"]), *cells)
    return table


def summary_text(metrics: dict[str, Any]) -> Text:
    primary = metrics["label_rules"].get(metrics["primary_label_rule"]) or {}
    conf = (primary.get("overall") or {}).get("confusion", {})
    trunc = metrics.get("truncation", {})
    decisions = metrics.get("decisions", {})
    lines = [
        f"confusion (gold {metrics['primary_label_rule']}): TP {conf.get('tp', 0)} FP {conf.get('fp', 0)} "
        f"FN {conf.get('fn', 0)} TN {conf.get('tn', 0)}",
        f"decisions: ACCEPT {decisions.get('ACCEPT', 0)}, REJECT {decisions.get('REJECT', 0)}, "
        f"UNPARSED {decisions.get('UNPARSED', 0)} (of which failed requests: {metrics.get('n_failed', 0)}); "
        f"unparsed counted as: {metrics['unparsed_policy']}",
        f"truncation ({trunc.get('method') or 'none'}): {trunc.get('papers_truncated', 0)} papers cut, "
        f"mean {trunc.get('mean_cut_chars', 0):.0f} chars, max {trunc.get('max_cut_chars', 0)} chars",
    ]
    for failure in (metrics.get("failures") or {}).get("most_common", []):
        lines.append(f"failed on {failure['papers']} paper(s): {failure['error']}")
    return Text("\n".join(lines))


def render_metrics(metrics: dict[str, Any]) -> Group:
    parts: list[Any] = []
    for rule, entry in metrics["label_rules"].items():
        if not entry.get("overall"):
            parts.append(Text(f"gold label {rule}: no paper has a known label ({entry['description']})"))
            continue
        parts.append(rule_table(metrics, rule, entry))
        venues = venue_table(entry)
        if venues is not None:
            parts.append(venues)
    parts.append(summary_text(metrics))
    return Group(*parts)


def print_metrics(metrics: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(render_metrics(metrics))


def rescore(run_dir: str | Path, *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Score a run directory's samples afresh (works on an interrupted run too)."""
    from peerbench.errors import ConfigError
    from peerbench.registry import registries
    from peerbench.runner import score_run
    from peerbench.store import read_run

    config, samples = read_run(run_dir)
    if not samples:
        raise ConfigError(f"{run_dir}: no samples yet")
    regs = registries()
    metric_objects = [regs.metrics.get(n).value for n in config.get("metrics") or regs.metrics.names()]
    return score_run(samples, config, metric_objects, resamples=resamples, seed=seed)
