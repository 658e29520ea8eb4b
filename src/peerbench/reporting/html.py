"""One self-contained HTML page per run: tables, figures embedded as PNG data, every review.

jinja2 renders it (autoescaped: review texts and titles are untrusted), matplotlib draws it, and
nothing on the page loads from anywhere else, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from peerbench.errors import ConfigError, MissingDependency
from peerbench.records import Decision
from peerbench.reporting.tables import SHOWN, VENUE_COLUMNS, fmt_ci, fmt_value


def proba_pairs(samples: list[dict[str, Any]], rule: str) -> tuple[list[bool], list[float]]:
    """(gold, P(accept)) of the papers that have both: what a reliability diagram is drawn from."""
    scored = [s for s in samples if s["gold"].get(rule) is not None and s.get("p_accept") is not None]
    return [bool(s["gold"][rule]) for s in scored], [float(s["p_accept"]) for s in scored]


def figures_for(metrics: dict[str, Any], samples: list[dict[str, Any]], rule: str) -> dict[str, bytes]:
    """PNG bytes by file stem; the P(accept) figures only when the run has P(accept) values."""
    from peerbench.reporting import plots

    entry = metrics["label_rules"][rule]
    out = {"confusion_matrix": plots.confusion_matrix_plot(entry["overall"]["confusion"]),
           "accept_rates": plots.accept_rates_plot({"all": entry["overall"], **entry.get("per_venue", {})})}
    y, p = proba_pairs(samples, rule)
    if y:
        out["reliability"] = plots.reliability_diagram(y, p)
        out["p_accept_histogram"] = plots.p_accept_histogram(y, p)
    return out


def build_report(run_dir: str | Path, *, html: str | Path | None = None, png_dir: str | Path | None = None,
                 label_rule: str | None = None, resamples: int | None = None,
                 seed: int | None = None, review_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the run afresh (with the run's own bootstrap unless told otherwise), then write the HTML
    page and/or the PNGs; returns the metrics."""
    from peerbench.errors import mask_secrets, register_env_secrets, scrub
    from peerbench.judging.tables import judge_sections
    from peerbench.pipeline.store import read_run, write_file
    from peerbench.reporting.scoring import bootstrap_settings, score_stored, selected, with_judgements
    from peerbench.reporting.tables import answered_line, choices_text

    try:
        import jinja2
    except ImportError:
        raise MissingDependency("jinja2", "report") from None
    resamples, seed = bootstrap_settings(run_dir, resamples, seed)
    config, samples = read_run(run_dir)
    samples = selected(config, samples)  # figures and paper rows over the papers the numbers are over
    metrics = with_judgements(run_dir, score_stored(run_dir, config, samples, resamples=resamples, seed=seed,
                                                    review_options=review_options))
    rule = label_rule or metrics["primary_label_rule"]
    if rule not in metrics["label_rules"]:
        raise ConfigError(f"--label-rule {rule}: this run was scored with {', '.join(metrics['label_rules'])}")
    entry = metrics["label_rules"][rule]
    if not entry.get("overall"):
        raise ConfigError(f"{run_dir}: no paper has a known gold label under {rule}")
    figures = figures_for(metrics, samples, rule)
    if png_dir is not None:
        folder = Path(png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in figures.items():
            (folder / f"{name}.png").write_bytes(data)
    if html is not None:
        environment = jinja2.Environment(loader=jinja2.PackageLoader("peerbench", "reporting/templates"),
                                         autoescape=True, undefined=jinja2.StrictUndefined)
        papers = []
        for s in samples:
            gold = s["gold"].get(rule)
            papers.append({"id": s["id"], "title": s.get("title") or "", "gold": "—" if gold is None else
                           Decision.of(gold).value, "decision": s.get("decision"),
                           "wrong": gold is not None and not s.get("error") and s.get("decision") != Decision.of(gold),
                           "p_accept": s.get("p_accept"), "completion": s.get("completion") or "",
                           "error": s.get("error")})
        overall = entry["overall"]["metrics"]
        register_env_secrets(config.get("options"))  # a run stored before masking, read by another process
        papers = mask_secrets(papers)  # before escaping: an escaped key would no longer match
        page = environment.get_template("report.html.j2").render(
            metrics=metrics, config=mask_secrets(config), run_dir=str(run_dir), rule=rule, entry=entry,
            confidence=int(round(metrics["bootstrap"]["confidence"] * 100)),
            overall_rows=[(name, overall[name]) for name in SHOWN if name in overall],
            baselines=entry.get("baselines", {}), cited=entry.get("cited", {}), per_venue=entry.get("per_venue", {}),
            venue_columns=VENUE_COLUMNS, has_proba="reliability" in figures, papers=papers,
            figures={name: base64.b64encode(data).decode("ascii") for name, data in figures.items()},
            fmt=fmt_value, ci=fmt_ci, answered=answered_line(metrics), choices=choices_text(metrics),
            judge_sections=judge_sections(metrics), **review_rows(metrics))
        Path(html).parent.mkdir(parents=True, exist_ok=True)
        write_file(Path(html), scrub(page))
    return metrics


def review_rows(metrics: dict[str, Any]) -> dict[str, Any]:
    """The review measures' rows and caption for the page (empty where the run has none)."""
    from peerbench.reporting.review_tables import caption, ordered_names

    review = metrics.get("review") or {}
    measures = (review.get("overall") or {}).get("measures") or {}
    return {"review_rows": [(name, measures[name]) for name in ordered_names(measures)],
            "review_caption": caption(review) if measures else ""}
