"""Rich tables for a run's metrics: the label rule in the title, intervals, and the trivial
baselines beside every number, so a skewed benchmark cannot flatter a reviewer."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from peerbench.reporting.fit import Table  # fitted to the console's width
from rich.text import Text

SHOWN = ("f1", "accuracy", "precision", "recall", "specificity", "balanced_accuracy", "mcc",
         "pred_accept_rate", "gold_accept_rate", "parse_failure_rate", "auroc", "average_precision", "brier", "ece",
         "rating_spearman", "rating_kendall", "rating_pairwise_accuracy", "rating_mae", "rating_auroc")
VENUE_COLUMNS = ("f1", "accuracy", "balanced_accuracy", "mcc", "pred_accept_rate", "gold_accept_rate")


def fmt_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def fmt_ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def rule_table(metrics: dict[str, Any], rule: str, entry: dict[str, Any]) -> Table:
    overall = entry["overall"]
    confidence = int(round(metrics["bootstrap"]["confidence"] * 100))
    choices = metrics.get("choices") or {}
    title = (f"{metrics.get('task', '')} · {metrics.get('backend', '')}:{metrics.get('model', '')} · "
             f"gold label: {rule} (n={overall['n']}) · parser: {choices.get('parser', '?')} · "
             f"unparsed = {metrics.get('unparsed_policy', '?')}\n{answered_line(metrics)}")
    source = metrics.get("p_accept_source")  # which logprobs (or samples) the P-based rows rest on
    table = Table(title=title, caption=entry["description"] + (f"\nP(accept) from {source}" if source else "")
                  + ceiling_note(entry) + (f"\nrating metrics {overall['rating_note']}" if overall.get("rating_note")
                                           else "") + cited_note(entry), title_justify="left")
    table.add_column("metric", no_wrap=True, min_width=18)
    table.add_column("value", justify="right")
    table.add_column(f"{confidence}% CI", justify="right")
    baselines = entry.get("baselines", {})
    for name in baselines:
        table.add_column(name, justify="right", style="dim")
    cited = {name: row["metrics"] for name, row in (entry.get("cited") or {}).items()}
    for name in cited:
        table.add_column(name, justify="right", style="italic")
    proba = {"auroc", "average_precision", "brier", "ece"}
    n_with_p = overall.get("n_with_p_accept")
    with_p = f" (n={n_with_p} with P)" if n_with_p == overall["n"] else f" (ONLY {n_with_p} of {overall['n']} with P)"
    n_rated, n_model_rated = overall.get("n_with_rating"), overall.get("n_model_rated")
    with_rating = "" if n_rated is None else f" (n={n_rated} rated)"
    for name in SHOWN:
        if name not in overall["metrics"] and not any(name in b for b in [*baselines.values(), *cited.values()]):
            continue
        m = overall["metrics"].get(name) or {"value": None, "ci": None}
        suffix = (with_p if name in proba else f" (n={n_model_rated} rated)" if name == "rating_auroc" and n_model_rated
                  is not None else with_rating if name.startswith("rating_") else "")
        table.add_row(name + suffix, fmt_value(m["value"]), fmt_ci(m["ci"]),
                      *(fmt_value(b.get(name)) for b in baselines.values()),
                      *(fmt_value(c.get(name)) for c in cited.values()))
    return table


def cited_note(entry: dict[str, Any]) -> str:
    """Where each cited column comes from: published figures, not computed from these data."""
    return "".join(f"\n{name}: published figures, not computed from these data ({row['source']})"
                   for name, row in (entry.get("cited") or {}).items())


def ceiling_note(entry: dict[str, Any]) -> str:
    """What the human column is: which papers, and that its threshold was chosen on them."""
    from peerbench.metrics.ceiling import HUMAN

    human = (entry.get("baselines") or {}).get(HUMAN)
    if not human:
        return ""
    papers = f"the {human['n']} papers with 2+ ratings" + (" the model rated" if human.get("on_model_rated") else "")
    note = (f"\n{HUMAN} (leave one out, {papers}): against the others' mean rating (the model: all "
            f"reviewers' mean), averaged over {human['draws']} draws")
    if "balanced_accuracy_threshold" in human:
        note += (f"\n{HUMAN} against the decision: balanced accuracy at the best threshold on these papers "
                 f"(rating >= {human['balanced_accuracy_threshold']:g})")
    return note


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
            cells.append("—" if m is None else f"{m['value']:.3f} {fmt_ci(m['ci'])}")
        table.add_row(venue, str(group["n"]), *cells)
    return table


def answered_line(metrics: dict[str, Any]) -> str:
    """'95/95 answered', or INCOMPLETE with what is missing: never a partial run passed off as whole."""
    answered, total = metrics.get("n_answered", metrics.get("n_samples", 0)), metrics.get("n_papers")
    if total is None or metrics.get("complete", True):
        return f"{answered}/{total if total is not None else answered} answered"
    return (f"INCOMPLETE: {answered}/{total} answered ({metrics.get('n_failed', 0)} failed, "
            f"{metrics.get('n_missing', 0)} not yet requested); rerun the same command to finish it")


def choices_text(metrics: dict[str, Any]) -> str:
    """The choices the reference's card leaves open, as this run made them."""
    choices = metrics.get("choices") or {}
    if not choices:
        return "choices: not recorded (a run made before peerbench recorded them)"
    return (f"prompt {choices['prompt']} ({choices['template_syntax']}) · parser {choices['parser']} · unparsed "
            f"reviews counted as {choices['unparsed']}\nbody: {choices['body']}\ntruncation: {choices['truncation']}")


def echo_line(metrics: dict[str, Any]) -> str:
    """How many reviews copied their prompt back, and for how many the copied words would have
    changed the decision had they been read as the model's own."""
    echoes = metrics.get("echoes") or {}
    found = (f"{echoes['reviews']} reviews, {echoes.get('read_otherwise', 0)} of which the copy would decide "
             "otherwise") if echoes.get("reviews") else "none"
    return f"echoes (50+ words of the prompt copied back; never read for a decision): {found}"


def summary_text(metrics: dict[str, Any]) -> Text:
    primary = metrics["label_rules"].get(metrics["primary_label_rule"]) or {}
    conf = (primary.get("overall") or {}).get("confusion", {})
    trunc = metrics.get("truncation", {})
    decisions = metrics.get("decisions", {})
    lines = [
        f"confusion (gold {metrics['primary_label_rule']}): TP {conf.get('tp', 0)} FP {conf.get('fp', 0)} "
        f"FN {conf.get('fn', 0)} TN {conf.get('tn', 0)}",
        f"decisions: ACCEPT {decisions.get('ACCEPT', 0)}, REJECT {decisions.get('REJECT', 0)}, "
        f"AMBIGUOUS {decisions.get('AMBIGUOUS', 0)}, UNPARSED {decisions.get('UNPARSED', 0)}; "
        f"unparsed and ambiguous counted as: {metrics['unparsed_policy']}; failed requests (not scored): "
        f"{metrics.get('n_failed', 0)}",
        echo_line(metrics),
        answered_line(metrics),
        choices_text(metrics),
        f"truncation ({trunc.get('method') or 'none'}): {trunc.get('papers_truncated', 0)} papers cut, "
        f"by {trunc.get('mean_cut_chars', 0):.0f} chars on average (max {trunc.get('max_cut_chars', 0)})",
    ]
    ratings = metrics.get("ratings")
    if ratings:
        low, high = ratings["scale"]
        lines.append(f"ratings ({low}-{high}): {ratings['given']} of {ratings['asked']} reviews gave an overall "
                     "rating line; the rating metrics cover only papers with one")
    generations = metrics.get("generations")
    if generations:
        lines.append(f"generations (--samples): {generations['total']}: ACCEPT {generations['ACCEPT']}, REJECT "
                     f"{generations['REJECT']}, AMBIGUOUS {generations['AMBIGUOUS']}, UNPARSED "
                     f"{generations['UNPARSED']}; the model's column scores each paper's first generation, the "
                     "majority column their vote")
    tokens = metrics.get("tokens") or {}
    if tokens.get("prompt") or tokens.get("completion"):
        cost = metrics.get("cost_usd")
        lines.append(f"tokens: prompt {tokens.get('prompt', 0)}, output {tokens.get('completion', 0)}, thinking "
                     f"{tokens.get('thinking', 0)}" + (f"; estimated cost ${cost:.4f}" if cost is not None else ""))
    if metrics.get("protocol"):
        from peerbench.reporting.protocol_summary import protocol_line

        lines.append(protocol_line(metrics["protocol"]))
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
    from peerbench.reporting.review_tables import review_table, review_venue_table

    parts.extend(t for t in (review_table(metrics), review_venue_table(metrics)) if t is not None)
    parts.append(summary_text(metrics))
    if metrics.get("judgements"):
        from peerbench.judging.tables import render_judgement

        parts.extend(render_judgement(judgement) for judgement in metrics["judgements"])
    return Group(*parts)


def print_metrics(metrics: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(render_metrics(metrics))


COMPARED = ("f1", "accuracy", "balanced_accuracy", "mcc", "precision", "recall", "specificity", "pred_accept_rate",
            "auroc", "brier", "ece", "rating_spearman", "rating_kendall", "rating_pairwise_accuracy", "rating_mae",
            "rating_auroc")  # a row shows where some run has the metric


def render_comparison(result: dict[str, Any], max_disagreements: int = 20) -> Group:
    confidence = int(round(result["bootstrap"]["confidence"] * 100))
    table = Table(title=f"{result['task']} · gold label: {result['label_rule']} · {result['n_papers']} papers in "
                        f"every run", title_justify="left")
    table.add_column("metric", no_wrap=True)
    for index, run in enumerate(result["runs"]):
        protocol = run.get("protocol")
        shown = f" · {protocol}" if protocol not in (None, "single") else ""
        table.add_column(f"{'ABCDEFGHIJ'[index] if index < 10 else index}: {run['backend']}:{run['model']}{shown}",
                         justify="right")
    for name in COMPARED:
        cells = [run["metrics"].get(name) for run in result["runs"]]
        if all(c is None for c in cells):
            continue
        table.add_row(name, *("—" if c is None else f"{c['value']:.3f} {fmt_ci(c['ci'])}" for c in cells))
    table.add_row("papers with P(accept)", *(f"{run.get('n_with_p_accept', '?')} of {result['n_papers']}"
                                             for run in result["runs"]))
    parts: list[Any] = [table]
    for index, pair in enumerate(result["pairs"], 1):
        label = "ABCDEFGHIJ"[index] if index < 10 else str(index)
        diffs = Table(title=f"{label} minus A (paired bootstrap, {confidence}% CI)", title_justify="left")
        for column in ("metric", "difference", f"{confidence}% CI", "p"):
            diffs.add_column(column, justify="right" if column != "metric" else "left")
        for name, d in pair["differences"].items():
            diffs.add_row(name, f"{d['difference']:+.3f}", fmt_ci(d["ci"]), f"{d['p_value']:.3f}")
        parts.append(diffs)
        mc = pair["mcnemar"]
        lines = [f"McNemar exact: A right where {label} wrong {mc['only_a_correct']}, {label} right where A wrong "
                 f"{mc['only_b_correct']}, p = {mc['p_value']:.3f}",
                 f"agreement {pair['agreement']:.3f}, Cohen's kappa {pair['cohen_kappa']:.3f}; "
                 f"{len(pair['disagreements'])} papers decided differently"]
        for row in pair["disagreements"][:max_disagreements]:
            lines.append(f"  {row['id']}: gold {row['gold']}, A {row['a']}, {label} {row['b']} · {row['title'] or ''}")
        if len(pair["disagreements"]) > max_disagreements:
            lines.append(f"  ... and {len(pair['disagreements']) - max_disagreements} more (--json for all)")
        parts.append(Text("\n".join(lines)))
    from peerbench.reporting.review_tables import review_comparison

    parts.extend(review_comparison(result))
    if result.get("judge"):
        from peerbench.judging.tables import render_judge_comparison

        parts.extend(render_judge_comparison(result["judge"]))
    return Group(*parts)


def _pct(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")


def render_probes(report: dict[str, Any]) -> Table:
    table = Table(title=f"{report['task']} · {report['backend']}:{report['model']} · robustness probes",
                  caption="flip = share of clean rejections that became acceptances; changed = share of papers "
                          "whose decision changed; 95% bootstrap intervals", title_justify="left")
    for column in ("arm", "kind", "n", "left out", "clean rejected", "flip REJECT→ACCEPT", "net of control",
                   "McNemar p", "changed", "P(accept) shift"):
        table.add_column(column, justify="left" if column in ("arm", "kind") else "right", no_wrap=column == "arm")
    for name, arm in report["arms"].items():
        shift = arm["p_accept_shift"]
        ci = arm["p_accept_shift_ci"]
        net = arm.get("net_of_control") or {}
        table.add_row(name, arm["kind"], str(arm["n"]), _left_out(arm), str(arm["clean_rejected"]),
                      _pct(arm["flip_reject_to_accept"], arm["flip_reject_to_accept_ci"]),
                      _pct(net.get("difference"), net.get("ci")),
                      "—" if net.get("p_value") is None else f"{net['p_value']:.3g}",
                      _pct(arm["decision_changed"], arm["decision_changed_ci"]),
                      "—" if shift is None else f"{shift:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
    return table


def _left_out(arm: dict[str, Any]) -> str:
    """Papers not compared: a failed request in either run, or no room in the context for the text."""
    parts = [f"{arm.get(key) or 0} {label}" for key, label in (("n_unanswered", "unanswered"),
                                                              ("n_not_placed", "not placed")) if arm.get(key)]
    return ", ".join(parts) or "0"


def render_sweep(summary: dict[str, Any]) -> Group:
    table = Table(title=f"sweep {summary['name']} · {summary['executor']} executor · {summary['wall_s']:.1f} s",
                  title_justify="left")
    for column in ("run", "status", "n", "f1", "accuracy", "balanced_accuracy", "mcc", "auroc"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right",
                         no_wrap=column in ("run", "status"))
    failures = []
    for run in summary["runs"]:
        metrics = run.get("metrics") or {}
        status = ("failed" if run.get("error") else "INCOMPLETE" if run.get("complete") is False
                  else "skipped" if run.get("skipped") else "done")
        if run.get("error"):
            failures.append(f"{run['name']} failed: {run['error']}")
        table.add_row(run["name"], status, str(run.get("n") or "—"),
                      *(fmt_value(metrics.get(m)) for m in ("f1", "accuracy", "balanced_accuracy", "mcc", "auroc")))
    caption = Text("skipped = finished in an earlier call; INCOMPLETE = failed papers, not scored (rerun the sweep); "
                   f"results in {summary['sweep_dir']}")
    return Group(table, caption, *(Text(line) for line in failures))
