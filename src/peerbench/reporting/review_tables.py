"""Rich tables of the review measures: only what scoring put into metrics.json's ``review`` entry."""

from __future__ import annotations

from typing import Any

from peerbench.reporting.fit import Table  # fitted to the console's width
from rich.text import Text

# The rows of the run table, in this order; per-section rows follow structure_sections.
ROWS = ("structure_full", "structure_sections", "structure_in_order", "structure_one_decision", "structure_bullets",
        "structure_words", "structure_tokens", "grounding_specifics", "grounding_in_given", "grounding_only_cut",
        "grounding_nowhere", "similarity_rouge_l", "similarity_embedding")
LABELS = {"grounding_only_cut": "grounding_only_cut (contamination signal)",
          "grounding_nowhere": "grounding_nowhere (ungrounded proxy)"}


def _cell(entry: dict[str, Any] | None) -> str:
    from peerbench.reporting.tables import fmt_ci

    if entry is None:
        return "—"
    value = entry["value"]
    text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return f"{text} {fmt_ci(entry.get('ci'))}" if entry.get("ci") else text


def ordered_names(measures: dict[str, Any]) -> list[str]:
    """ROWS first (sections right after structure_sections), then any plugin's own names."""
    sections = [n for n in measures if n.startswith("structure_section:")]
    names: list[str] = []
    for name in ROWS:
        if name in measures:
            names.append(name)
        if name == "structure_sections":
            names.extend(sections)
    return names + [n for n in measures if n not in names and n not in sections]


def review_table(metrics: dict[str, Any]) -> Table | None:
    """The review measures, with the human ceiling beside the ones that have one."""
    review = metrics.get("review")
    if not review or not review.get("overall"):
        return None
    overall = review["overall"]
    confidence = int(round(metrics.get("bootstrap", {}).get("confidence", 0.95) * 100))
    table = Table(title=f"the review itself · {overall['n']} reviews · {confidence}% CI", title_justify="left",
                  caption=caption(review), caption_justify="left")
    for column in ("measure", "n", "model", "one human reviewer (leave one out)", "model - human"):
        table.add_column(column, justify="left" if column == "measure" else "right", overflow="fold")
    for name in ordered_names(overall["measures"]):
        entry = overall["measures"][name]
        table.add_row(LABELS.get(name, name), str(entry["n"]), _cell(entry), _cell(entry.get("human")),
                      _cell(entry.get("difference")))
    return table


def caption(review: dict[str, Any]) -> str:
    """Which papers each part stands on: the papers read back, and 'n of N with human reviews'."""
    overall = review["overall"]
    lines = [f"{overall['n_with_human_reviews']} of {overall['n']} papers with two or more human reviews "
             "(similarity and its ceiling on these only)",
             f"paper text read back for {overall['n_with_paper']} of {overall['n']} (grounding on these only)"]
    if review.get("n_paper_changed"):
        lines.append(f"{review['n_paper_changed']} papers changed since they were answered: left out of grounding")
    if review.get("papers_note"):
        lines.append(review["papers_note"])
    lines.extend(f"{name}: not measured: {why}" for name, why in (review.get("skipped") or {}).items())
    if not review.get("encoder"):
        lines.append("embedding similarity: not computed (report --encoder)")
    return "\n".join(lines)


def review_venue_table(metrics: dict[str, Any]) -> Table | None:
    per_venue = (metrics.get("review") or {}).get("per_venue") or {}
    if not per_venue:
        return None
    shown = ("structure_full", "grounding_in_given", "grounding_only_cut", "grounding_nowhere", "similarity_rouge_l")
    table = Table(title="the review itself, per venue", title_justify="left")
    for column in ("venue", "n", *shown):
        table.add_column(column, justify="left" if column == "venue" else "right")
    for venue, group in per_venue.items():
        table.add_row(venue, str(group["n"]), *(_cell(group["measures"].get(name)) for name in shown))
    return table


def review_comparison(result: dict[str, Any]) -> list[Any]:
    """compare's review part: B minus A on each measure, paired over the papers both runs have."""
    review = result.get("review")
    if not review:
        return []
    from peerbench.reporting.tables import fmt_ci

    confidence = int(round(result["bootstrap"]["confidence"] * 100))
    parts: list[Any] = []
    for index, pair in enumerate(review["pairs"], 1):
        label = "ABCDEFGHIJ"[index] if index < 10 else str(index)
        table = Table(title=f"the review itself: {label} minus A (paired bootstrap, {confidence}% CI)",
                      title_justify="left")
        for column in ("measure", "n", "A", label, "difference", f"{confidence}% CI", "p"):
            table.add_column(column, justify="left" if column == "measure" else "right")
        for name in ordered_names(pair):
            d = pair[name]
            table.add_row(name, str(d["n"]), _cell(review["runs"][0].get(name)), _cell(review["runs"][index].get(name)),
                          f"{d['difference']:+.3f}", fmt_ci(d["ci"]), f"{d['p_value']:.3f}")
        parts.append(table)
    if not parts:
        parts.append(Text("the review itself: no measure in common"))
    return parts
