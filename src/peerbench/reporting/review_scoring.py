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

from peerbench.errors import MissingDependency, PeerbenchError
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


def load_papers(config: Mapping[str, Any], data_dir: Any = None) -> tuple[dict[str, Any] | None, str | None]:
    """The run's papers by key, read from its dataset as the task selects it, in ``data_dir`` where
    given, else PEERBENCH_DATA where that is set, else the run's own --data-dir where it still exists,
    else the download cache; (None, why) where they cannot be read (no copy here and no network, an
    uninstalled plugin...)."""
    import json
    import os

    data_dir = _data_dir_of(config, data_dir)
    dataset_info = dict(config.get("dataset") or {})
    key = json.dumps([dataset_info, str(data_dir) if data_dir else None, os.environ.get("PEERBENCH_HOME")],
                     sort_keys=True, default=str)
    if key in _LOADED:
        return _LOADED[key]
    dataset, args, why = _dataset_of(config, data_dir)
    if dataset is None:
        return None, why
    try:
        papers = dataset.load(args, progress=False)
    except (PeerbenchError, OSError, ValueError) as exc:
        return None, f"the papers could not be read back from dataset {dataset.name!r}: {str(exc).splitlines()[0][:200]}"
    _LOADED[key] = ({paper.key: paper for paper in papers}, None)
    return _LOADED[key]


def _data_dir_of(config: Mapping[str, Any], data_dir: Any = None) -> Any:
    import os

    if data_dir is None:
        data_dir = config.get("data_dir") if config.get("data_dir") and os.path.isdir(config["data_dir"]) else None
        data_dir = os.environ.get("PEERBENCH_DATA") or data_dir
    from pathlib import Path

    return Path(data_dir) if data_dir else None  # a dataset factory gets a path, as in a run


def _dataset_of(config: Mapping[str, Any], data_dir: Any = None):
    """(dataset, its parsed selection, None), or (None, None, why) where it cannot be opened."""
    from peerbench.registry import registries

    dataset_info = dict(config.get("dataset") or {})
    name = dataset_info.pop("name", None)
    if not isinstance(name, str):
        return None, None, "the run's config.json names no dataset to read the papers back from"
    try:
        dataset = registries().datasets.get(name).value(_data_dir_of(config, data_dir))
        return dataset, dataset.parse_args(dataset_info, f"task {config.get('task')}"), None
    except (PeerbenchError, OSError, ValueError) as exc:
        return None, None, f"the papers could not be read back from dataset {name!r}: {str(exc).splitlines()[0][:200]}"


_LOADED: dict[str, tuple[dict[str, Any] | None, str | None]] = {}  # one read per dataset selection per process


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


def review_values(answered: Sequence[dict[str, Any]], config: Mapping[str, Any], measures: Sequence[ReviewMeasure],
                  *, papers: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None):
    """(inputs in id order, the model's values by family, the human ceiling's by family (None where a
    family has none), counts and the note on the papers) for the answered samples.

    Without ``papers``, the papers are streamed back from the dataset and measured a chunk at a
    time (:data:`CHUNK_PAPERS`), each chunk's texts let go once measured: the measures cost the
    memory of one chunk of papers, not of the corpus (every measure is per review)."""
    rows = sorted(answered, key=lambda s: str(s["id"]))
    if papers is not None:
        return _measured(rows, config, measures, papers, options, None)
    chunks, note = streamed_papers(config, {s["id"] for s in rows})
    if chunks is None:
        return _measured(rows, config, measures, None, options, note)
    by_id = {s["id"]: s for s in rows}
    parts = []
    while True:
        try:  # only reading the data is caught here: a measure's own error (--encoder) is the user's
            batch = next(chunks, None)
        except (PeerbenchError, OSError, ValueError) as exc:
            name = (config.get("dataset") or {}).get("name")
            why = f"the papers could not be read back from dataset {name!r}: {str(exc).splitlines()[0][:200]}"
            return _measured(rows, config, measures, None, options, why)
        if batch is None:
            break
        parts.append(_measured([by_id[key] for key in batch], config, measures, batch, options, None, slim=True))
    seen = {item.id for part in parts for item in part[0]}
    parts.append(_measured([s for s in rows if s["id"] not in seen], config, measures, {}, options, None, slim=True))
    return _in_id_order(parts)


CHUNK_PAPERS = 256  # papers measured at a time when they are streamed back from the dataset


def streamed_papers(config: Mapping[str, Any], wanted: set[str]):
    """(an iterator of {key: paper} chunks of the wanted papers, None), or (None, why) where the
    dataset cannot be opened; a problem further down the data is raised while iterating."""
    dataset, args, why = _dataset_of(config)
    if dataset is None:
        return None, why

    def chunks():
        batch: dict[str, Any] = {}
        for paper in dataset.iter_papers(args, progress=False):
            if paper.key in wanted:
                batch[paper.key] = paper
            if len(batch) >= CHUNK_PAPERS:
                yield batch
                batch = {}
        if batch:
            yield batch

    return chunks(), None


def _measured(rows, config, measures, papers, options, note, slim: bool = False):
    inputs, counts = review_inputs(rows, config, papers)
    model: dict[str, list] = {}
    human: dict[str, list | None] = {}
    skipped: dict[str, str] = {}
    for measure in measures:
        try:
            result = measure.measure(inputs, dict(options or {}))
        except MissingDependency as exc:
            if (options or {}).get("encoder") and measure.name == "similarity":
                raise  # asked for by name: the one-line error, not a quiet gap
            skipped[measure.name] = str(exc)  # an extra not installed: said beside the table
            continue
        model[measure.name], human[measure.name] = result if measure.paired else (result, None)
    if slim:  # what aggregation reads of an input: its id, venue, and whether it had a paper and humans
        inputs = [_without_texts(item) for item in inputs]
    return inputs, model, human, {**counts, "papers_note": note, "skipped": skipped}


def _without_texts(item: ReviewInput) -> ReviewInput:
    import dataclasses

    def blank(text):
        return None if text is None else ""

    humans = None if item.human_reviews is None else ("",) * len(item.human_reviews)
    return dataclasses.replace(item, review="", given_text=blank(item.given_text), whole_text=blank(item.whole_text),
                               human_reviews=humans)


def _in_id_order(parts):
    """The chunks' inputs and values as one, in id order (each chunk came in the dataset's order)."""
    inputs = [item for part in parts for item in part[0]]
    order = sorted(range(len(inputs)), key=lambda i: str(inputs[i].id))
    model: dict[str, list] = {}
    human: dict[str, list | None] = {}
    for name in parts[0][1]:
        values = [v for part in parts for v in part[1].get(name, [])]
        model[name] = [values[i] for i in order]
        if parts[0][2].get(name) is None:
            human[name] = None
        else:
            paired = [v for part in parts for v in part[2][name]]
            human[name] = [paired[i] for i in order]
    counts = {"n_paper_changed": sum(part[3]["n_paper_changed"] for part in parts), "papers_note": None,
              "skipped": {k: v for part in parts for k, v in part[3]["skipped"].items()}}
    return [inputs[i] for i in order], model, human, counts


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
    options = dict(options or {})
    inputs, model, human, counts = review_values(answered, config, measures, papers=papers, options=options)
    kwargs = {"resamples": resamples, "seed": seed, "confidence": confidence}
    venues = sorted({item.venue for item in inputs})
    entry = {"measures_run": [m.name for m in measures], "encoder": options.get("encoder"),
             **counts,
             "overall": _group(list(range(len(inputs))), model, human, inputs, kwargs),
             "per_venue": {} if len(venues) < 2 else {
                 venue: _group([i for i, item in enumerate(inputs) if item.venue == venue], model, human, inputs,
                               kwargs) for venue in venues},
             "per_review": per_review(inputs, model)}
    return entry


def per_review(inputs: Sequence[ReviewInput], model: Mapping[str, list]) -> dict[str, dict[str, float]]:
    """Each review's own values by sample id (the per-section flags left to the rates), so a reader
    can find the reviews behind a rate: which cite only the cut part, which miss a section."""
    out: dict[str, dict[str, float]] = {}
    for index, item in enumerate(inputs):
        out[item.id] = {name: round(value, 6) for values in model.values() for name, value in values[index].items()
                        if value is not None and not name.startswith("structure_section:")}
    return out


def compare_reviews(runs: Sequence[tuple[Mapping[str, Any], Sequence[dict[str, Any]]]], *, resamples: int, seed: int,
                    confidence: float, options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """compare's review part: each run's means on the common papers, and for each later run its paired
    differences from the first (the same resampled papers, the papers where both have a value)."""
    import numpy as np

    from peerbench.registry import registries

    measures = [e.value for e in registries().metrics.entries() if isinstance(e.value, ReviewMeasure)]
    if not measures:
        return None
    kwargs = {"resamples": resamples, "seed": seed, "confidence": confidence}
    per_run = []
    for config, rows in runs:
        inputs, model, human, _ = review_values(rows, config, measures, options=options)
        per_run.append({name: [v.get(name) for v in values] for family in model for values in [model[family]]
                        for name in dict.fromkeys(n for v in values for n in v)})
    out: dict[str, Any] = {"runs": [], "pairs": []}
    for values in per_run:
        out["runs"].append({name: aggregate([{name: v} for v in column], None, **kwargs).get(name)
                            for name, column in values.items()})
    alpha = (1 - confidence) / 2
    for values in per_run[1:]:
        differences = {}
        for name, column in values.items():
            base = per_run[0].get(name)
            if base is None:
                continue
            pairs = np.array([(b, a) for a, b in zip(base, column) if a is not None and b is not None], dtype=float)
            if not len(pairs):
                continue
            diff = pairs[:, 0] - pairs[:, 1]
            index = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
            means = diff[index].mean(1) if resamples > 0 else np.array([diff.mean()])
            differences[name] = {"difference": float(diff.mean()), "n": len(diff),
                                 "ci": [float(q) for q in np.quantile(means, [alpha, 1 - alpha])],
                                 # the share of resampled differences on the other side of zero, doubled
                                 "p_value": float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))}
        out["pairs"].append(differences)
    return out


def compare_part(runs: Sequence[tuple[str, Mapping[str, Any], Mapping[str, dict[str, Any]]]], ids: Sequence[str],
                 **kwargs: Any) -> dict[str, Any]:
    """``{"review": ...}`` for compare's result (each measure, B minus A on the papers where both have
    a value), or nothing where no review measure is registered."""
    review = compare_reviews([(config, [samples[i] for i in ids]) for _, config, samples in runs], **kwargs)
    return {} if review is None else {"review": review}
