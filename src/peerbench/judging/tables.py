"""What `peerbench judge` and `report` print of a judgement: only what its metrics.json holds.
The judge's own checks (shuffle control, self-agreement, against the reviewers' numbers, parse
failures) are printed with its figures, never apart from them."""

from __future__ import annotations

from typing import Any

POINT_ROWS = (("points_model_matched", "model's points raised by some human review"),
              ("points_human_raised", "each human review's points raised by the model"),
              ("points_per_review", "points per review"), ("length_words", "review length (words)"))
ASPECT_ROWS = tuple((f"aspect_{a}", a) for a in ("specificity", "actionability", "correctness", "coverage")) + (
    ("aspect_mean", "mean of the four"), ("length_words", "review length (words)"))


def _cell(entry: dict[str, Any] | None) -> str:
    from peerbench.reporting.review_tables import _cell as cell

    return cell(entry)


def _table(title: str, rows: tuple[tuple[str, str], ...], measures: dict[str, Any], human_column: str) -> Any:
    from peerbench.reporting.fit import Table

    table = Table(title=title, title_justify="left")
    for column in ("figure", "n", "model", human_column, "model - human"):
        table.add_column(column, justify="left" if column == "figure" else "right", overflow="fold")
    for name, label in rows:
        entry = measures.get(name)
        if entry is not None:
            table.add_row(label, str(entry["n"]), _cell(entry), _cell(entry.get("human")),
                          _cell(entry.get("difference")))
    return table


def judge_lines(metrics: dict[str, Any]) -> list[str]:
    """The judge's checks and counts, one line each."""
    judge = metrics["judge"]
    lines = [f"judge {judge['backend']}:{judge['model']} ({judge['judge_id']}), rubric {judge['rubric']}, prompts "
             f"v{judge['prompts']['version']}; {metrics['n_judged']} of {metrics['n_answered']} answered reviews "
             f"judged, {metrics['n_complete_papers']} complete"]
    if metrics.get("n_run_papers", 0) > metrics["n_answered"]:
        lines.append(f"the run itself is unfinished: {metrics['n_answered']} of its {metrics['n_run_papers']} papers "
                     "have a review; a judge rerun after the run is finished judges the rest")
    if metrics.get("n_paper_missing_or_changed"):
        lines.append(f"{metrics['n_paper_missing_or_changed']} reviews left out: their paper is not in the data "
                     "or has changed since the run")
    failures = metrics["parse_failures"]
    lines.append(f"judge answers that could not be read: {failures['count']} of {metrics['n_requests']} requests "
                 "(left out, never scored as zero)")
    for example in failures["examples"][:3]:
        lines.append(f"  {example['request']}: {example['why']}")
    points = metrics.get("points")
    if points:
        shuffled = points["shuffle"].get("points_model_matched_shuffled")
        if shuffled:
            lines.append(f"shuffle control (model's points vs another paper's human reviews): {_cell(shuffled)} "
                         f"on {shuffled['n']} papers")
    aspects = metrics.get("aspects") or {}
    agreement = aspects.get("agreement")
    if agreement:
        lines.append(f"self-agreement (model's rubric asked again, another seed, {agreement['n_papers']} papers): "
                     f"{agreement['exact']:.3f} of grades equal, mean |difference| "
                     f"{agreement['mean_abs_difference']:.3f}")
    against = aspects.get("against_humans")
    if against:
        parts = [f"{name} rho {'—' if v['rho'] is None else format(v['rho'], '.3f')} (n={v['n']})"
                 for name, v in against.items()]
        lines.append("judge's grades of the human reviews vs the reviewers' own numbers (Spearman): " + ", ".join(parts))
    lines.extend(f"FLAG: {flag}" for flag in metrics.get("flags") or [])
    if not metrics.get("complete", True):
        from peerbench.judging.stage import incomplete_line

        lines.append(incomplete_line(metrics))
    return lines


def render_judgement(metrics: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    confidence = int(round(metrics["bootstrap"]["confidence"] * 100))
    parts: list[Any] = []
    points = metrics.get("points")
    if points:
        parts.append(_table(f"judged points (hit rates) · {points['n_papers']} papers · {confidence}% CI", POINT_ROWS,
                            points["measures"], "one human vs the others"))
    aspects = metrics.get("aspects")
    if aspects:
        parts.append(_table(f"judged aspects (1-5) · {aspects['n_papers']} papers · {confidence}% CI", ASPECT_ROWS,
                            aspects["measures"], "human reviews, same judge"))
    parts.append(Text("\n".join(judge_lines(metrics))))
    return Group(*parts)


def judge_sections(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Each judgement of the run, for the HTML page: its tables' rows and its checks."""
    sections = []
    for judgement in metrics.get("judgements") or []:
        judge, tables = judgement["judge"], []
        for part, rows, human_column in (("points", POINT_ROWS, "one human vs the others"),
                                         ("aspects", ASPECT_ROWS, "human reviews, same judge")):
            found = judgement.get(part)
            if found:
                tables.append({"title": f"{part} · {found['n_papers']} papers", "human_column": human_column,
                               "rows": [(label, found["measures"][name]) for name, label in rows
                                        if name in found["measures"]]})
        sections.append({"title": f"{judge['backend']}:{judge['model']} ({judge['judge_id']})", "tables": tables,
                         "lines": judge_lines(judgement)})
    return sections


def render_judge_comparison(judged: dict[str, Any]) -> list[Any]:
    """compare's judge part: for each judge that judged every run, B minus A per figure."""
    from peerbench.reporting.fit import Table

    from peerbench.reporting.tables import fmt_ci

    parts: list[Any] = []
    for judge_id, entry in judged.items():
        for index, pair in enumerate(entry["pairs"], 1):
            label = "ABCDEFGHIJ"[index] if index < 10 else str(index)
            table = Table(title=f"judged by {judge_id}: {label} minus A ({entry['n_papers']} papers, paired bootstrap)",
                          title_justify="left")
            for column in ("figure", "n", "A", label, "difference", "CI", "p"):
                table.add_column(column, justify="left" if column == "figure" else "right")
            for name, d in pair.items():
                table.add_row(name, str(d["n"]), _cell(entry["runs"][0].get(name)),
                              _cell(entry["runs"][index].get(name)), f"{d['difference']:+.3f}", fmt_ci(d["ci"]),
                              f"{d['p_value']:.3f}")
            parts.append(table)
    return parts
