"""The review measures' part of metrics.json: stored samples (and, read back from the dataset at
scoring time, each paper's text and human reviews) -> per-review values -> means with intervals,
overall and per venue.

Whole papers are never stored in samples.jsonl: the text a model was given is re-derived from the
dataset (title, abstract and the body as the prompt builds it) and the truncation each sample
records (``cut_chars``, the characters cut from the body's end). A paper whose content hash differs
from the one the sample was answered for is left out of grounding (counted), as is every paper
when the dataset cannot be read (the reason is said).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from peerbench.metrics.review import ReviewInput, ReviewMeasure, aggregate


def split_measures(objects: Sequence[Any]) -> tuple[list[Any], list[ReviewMeasure]]:
    """(decision metrics, review measures) of a list of registered metric objects."""
    review = [m for m in objects if isinstance(m, ReviewMeasure)]
    return [m for m in objects if not isinstance(m, ReviewMeasure)], review


def texts_of(paper: Any, truncation: Mapping[str, Any] | None) -> tuple[str, str]:
    """(given text, whole text) of a paper: title, abstract and body, the body cut as the sample's
    truncation record says."""
    from peerbench.prompts import paper_body

    body = paper_body(paper)
    cut = int((truncation or {}).get("cut_chars") or 0)
    head = f"{paper.title}\n{paper.abstract}\n"
    return head + (body[: len(body) - cut] if cut else body), head + body


def load_papers(config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The run's papers by key, read from its dataset as the task selects it; (None, why) where they
    cannot be read (no copy on this machine and no network, an uninstalled plugin...)."""
    from peerbench.errors import PeerbenchError
    from peerbench.registry import registries

    dataset_info = dict(config.get("dataset") or {})
    name = dataset_info.pop("name", None)
    try:
        dataset = registries().datasets.get(name).value(None)
        args = dataset.parse_args(dataset_info, f"task {config.get('task')}")
        papers = dataset.load(args, progress=False)
    except (PeerbenchError, OSError, ValueError) as exc:
        return None, f"the papers could not be read back from dataset {name!r}: {str(exc).splitlines()[0][:200]}"
    return {paper.key: paper for paper in papers}, None


def review_inputs(samples: Sequence[dict[str, Any]], config: Mapping[str, Any],
                  papers: Mapping[str, Any] | None) -> tuple[list[ReviewInput], dict[str, int]]:
    """One ReviewInput per answered sample (in the given order), and counts of what was left out."""
    from peerbench.metrics.review_format import format_of_config

    fmt = format_of_config(dict(config))
    parser = (config.get("task_definition") or {}).get("parser", "reference")
    inputs, changed = [], 0
    for sample in samples:
        paper = (papers or {}).get(sample["id"])
        if paper is not None and sample.get("paper_hash") and paper.content_hash() != sample["paper_hash"]:
            paper, changed = None, changed + 1
        given, whole = texts_of(paper, sample.get("truncation")) if paper is not None else (None, None)
        humans = (paper.meta or {}).get("human_reviews") if paper is not None else None
        inputs.append(ReviewInput(id=sample["id"], venue=sample["venue"], review=sample.get("completion") or "",
                                  format=fmt, parser=parser, completion_tokens=sample.get("completion_tokens"),
                                  given_text=given, whole_text=whole,
                                  human_reviews=tuple(humans) if humans is not None else None))
    return inputs, {"n_paper_changed": changed}


def _group(rows: list[int], model: dict[str, list], human: dict[str, list], inputs: list[ReviewInput],
           kwargs: dict[str, Any]) -> dict[str, Any]:
    measures: dict[str, Any] = {}
    for family in model:
        humans = [human[family][i] for i in rows] if human.get(family) is not None else None
        measures.update(aggregate([model[family][i] for i in rows], humans, **kwargs))
    with_humans = sum(1 for i in rows if inputs[i].human_reviews is not None and len(inputs[i].human_reviews) >= 2)
    return {"n": len(rows), "n_with_paper": sum(1 for i in rows if inputs[i].given_text is not None),
            "n_with_human_reviews": with_humans, "measures": measures}


def score_reviews(answered: Sequence[dict[str, Any]], config: Mapping[str, Any], measures: Sequence[ReviewMeasure],
                  *, papers: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None,
                  resamples: int, seed: int, confidence: float = 0.95) -> dict[str, Any] | None:
    """metrics.json's ``review`` entry; None where no review measure is selected or nothing is answered.
    ``papers`` (by key) are the run's own where it has them; else they are read back from the dataset."""
    if not measures or not answered:
        return None
    note = None
    if papers is None:
        papers, note = load_papers(config)
    rows = sorted(answered, key=lambda s: str(s["id"]))
    inputs, counts = review_inputs(rows, config, papers)
    options = dict(options or {})
    model: dict[str, list] = {}
    human: dict[str, list] = {}
    for measure in measures:
        result = measure.measure(inputs, options)
        model[measure.name], human[measure.name] = result if measure.paired else (result, None)
    kwargs = {"resamples": resamples, "seed": seed, "confidence": confidence}
    venues = sorted({item.venue for item in inputs})
    entry = {"measures_run": [m.name for m in measures], "encoder": options.get("encoder"),
             **counts, "papers_note": note,
             "overall": _group(list(range(len(inputs))), model, human, inputs, kwargs),
             "per_venue": {} if len(venues) < 2 else {
                 venue: _group([i for i, item in enumerate(inputs) if item.venue == venue], model, human, inputs,
                               kwargs) for venue in venues}}
    return entry
