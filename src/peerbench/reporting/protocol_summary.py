"""What a multi-call protocol cost, per paper: calls, tokens and wall time, from the samples' traces
(for metrics.json's ``protocol`` entry and the line under the tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def protocol_summary(samples: Sequence[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any] | None:
    """Calls, tokens and wall time per paper over the papers with a trace; None for a one-call run."""
    protocol = config.get("protocol")
    if not protocol:
        return None
    traced = [s for s in samples if s.get("trace")]
    calls = [len(s["trace"]) for s in traced]
    cached = sum(1 for s in traced for entry in s["trace"] if entry.get("cached"))

    def per_paper(field: str) -> float | None:
        values = [s.get(field) or 0 for s in traced]
        return sum(values) / len(values) if values else None

    thinking = [(s.get("extra") or {}).get("thinking_tokens") or 0 for s in traced]
    return {"name": protocol["name"], "options": protocol.get("options", {}), "papers": len(traced),
            "calls": sum(calls), "cached_calls": cached, "calls_per_paper": _spread(calls),
            "tokens_per_paper": {"prompt": per_paper("prompt_tokens"), "completion": per_paper("completion_tokens"),
                                 "thinking": sum(thinking) / len(thinking) if thinking else None},
            "wall_s_per_paper": _spread([(s.get("extra") or {}).get("wall_s") or s.get("latency_s") or 0.0
                                         for s in traced])}


def protocol_line(summary: dict[str, Any]) -> str:
    """One line for the table: ``protocol aiscientist (...): 5.5 calls per paper (4-6), ...``."""
    options = ", ".join(f"{k}={v}" for k, v in summary["options"].items() if v is not None)
    calls, tokens, wall = summary["calls_per_paper"], summary["tokens_per_paper"], summary["wall_s_per_paper"]
    if not summary["papers"]:
        return f"protocol {summary['name']} ({options}): no paper has a trace yet"
    return (f"protocol {summary['name']} ({options}): {summary['calls']} calls for {summary['papers']} papers, "
            f"{calls['mean']:.2f} per paper ({calls['min']}-{calls['max']}), {summary['cached_calls']} from the "
            f"cache; tokens per paper: prompt {tokens['prompt']:.0f}, output {tokens['completion']:.0f}, thinking "
            f"{tokens['thinking']:.0f}; wall time per paper {wall['mean']:.2f} s (max {wall['max']:.2f} s)")
