"""`peerbench export hf`: a task as a ``datasets.DatasetDict`` on disk, ready for the Hub.

Each paper as the ``hf`` dataset reads it back (id, venue, split, title, abstract, sections,
accepted, recommendations), the prompt peerbench would send (cut by characters, as without a
tokenizer), the gold label under every rule the task reports and, with ``--run``, the model's
review, decision and P(accept). Beside the data: a dataset card (README.md) and a task YAML that
runs the export through the ``hf`` dataset, so that the round trip is one command. Nothing is
pushed: the card says how, and says it loudly where the source data ships no license that
allows redistribution (PeerRead ships none).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from peerbench.errors import ConfigError
from peerbench.records import Paper

TEST_SPLIT, TRAIN_SPLIT = "test", "train"
PUSH_HINT = ("python -c \"import datasets; datasets.load_from_disk('{out}').push_to_hub('YOU/{name}', private=True)\""
             "\nhuggingface-cli upload YOU/{name} {out}/README.md README.md --repo-type dataset")


def features(rules: Sequence[str], with_run: bool) -> Any:
    """The columns, typed once, so an all-empty column (no ICLR decision in ACL) is never typed null."""
    from datasets import Features, Value

    text = Value("string")
    columns = {"key": text, "id": text, "venue": text, "split": text, "title": text, "abstract": text,
               "sections": [{"heading": text, "text": text}], "accepted": Value("bool"),
               "recommendations": [Value("float64")], "system_prompt": text, "user_prompt": text,
               "prompt_hash": text, "cut_chars": Value("int64"), "gold": {rule: Value("bool") for rule in rules}}
    if with_run:
        columns.update(review=text, decision=text, p_accept=Value("float64"), prompt_matches_run=Value("bool"))
    return Features(columns)


def paper_row(paper: Paper, task: Any, rules: dict[str, Any], answer: dict[str, Any] | None,
              with_run: bool) -> dict[str, Any]:
    from peerbench.pipeline.store import stable_hash
    from peerbench.prompts import render

    rendered = render(paper, task.prompt_template(), max_model_len=task.max_model_len,
                      max_tokens=task.generation.max_tokens)
    prompt_hash = stable_hash(rendered.messages)[:16]
    row = {"key": paper.key, "id": paper.id, "venue": paper.venue, "split": paper.split, "title": paper.title,
           "abstract": paper.abstract,
           "sections": [{"heading": s.heading, "text": s.text} for s in paper.sections],
           "accepted": paper.accepted, "recommendations": [float(r) for r in paper.recommendations],
           "system_prompt": rendered.messages[0]["content"], "user_prompt": rendered.messages[1]["content"],
           "prompt_hash": prompt_hash, "cut_chars": int(rendered.truncation.get("cut_chars", 0)),
           "gold": {name: rule.label(paper) for name, rule in rules.items()}}
    if with_run:
        answer = answer or {}
        row.update(review=answer.get("completion"), decision=answer.get("decision"), p_accept=answer.get("p_accept"),
                   prompt_matches_run=answer.get("prompt_hash") == prompt_hash if answer else None)
    return row


def run_answers(run_dir: str | Path, plan: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The run's samples by paper key; the run must be of this very task (same fingerprint)."""
    from peerbench.pipeline.store import read_run
    from peerbench.reporting.scoring import selected

    config, samples = read_run(run_dir)
    if config.get("task") != plan.task.task or config.get("task_fingerprint") != plan.config["task_fingerprint"]:
        raise ConfigError(f"--run {run_dir}: a run of task {config.get('task')!r} as defined there, not of "
                          f"{plan.task.task!r} as exported now (prompt, labels or data differ)")
    return {s["id"]: s for s in selected(config, samples)}, config


def license_of(plan: Any) -> tuple[str | None, str | None]:
    """(the source's license, or None; the warning to print where none allows redistribution)."""
    from peerbench.registry import registries

    declared = getattr(plan.dataset, "license", None)
    if declared:
        return declared, None
    name = plan.task.dataset.name
    description = registries().datasets.get(name).description
    return None, (f"LICENSE: dataset {name!r} ({description}) ships no license that allows redistribution: "
                  "keep this export private (push_to_hub(..., private=True)) unless you hold the rights to share it.")


def train_papers(plan: Any) -> list[Paper]:
    """The task's train split (what tfidf-lr learns from), so that the exported task can train it too."""
    raw = {**plan.task_args, **plan.task.train}
    raw.pop("ids", None)
    args = plan.dataset.parse_args(raw, f"task {plan.task.task} (train)")
    return plan.dataset.load(args, progress=False)


def export_hf(task_name: str, out: str | Path, *, run_dir: str | Path | None = None,
              data_dir: str | Path | None = None, include_paths: Sequence[str | Path] = (),
              limit: int | None = None) -> dict[str, Any]:
    """Write the DatasetDict (``test``: the task's papers; ``train``: its train split, where it has one),
    the dataset card and the round-trip task YAML to ``out``; returns what the CLI prints."""
    from peerbench.datasets.hf import load_datasets_library
    from peerbench.interop import exported_selection

    datasets = load_datasets_library()
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()) and not (folder / "dataset_dict.json").is_file():
        raise ConfigError(f"--out {folder}: exists and holds something other than an earlier export")
    plan, papers, rules = exported_selection(task_name, data_dir=data_dir, include_paths=include_paths, limit=limit)
    task = plan.task
    answers, run_config = run_answers(run_dir, plan) if run_dir is not None else ({}, None)
    with_run = run_dir is not None
    schema = features(list(rules), with_run)
    splits = {TEST_SPLIT: [paper_row(p, task, rules, answers.get(p.key), with_run) for p in papers]}
    if task.train is not None:
        splits[TRAIN_SPLIT] = [paper_row(p, task, rules, None, with_run) for p in train_papers(plan)]
    license_id, warning = license_of(plan)
    card = dataset_card(plan, {k: len(v) for k, v in splits.items()}, license_id, warning, run_config, folder)
    parts = {}
    for name, rows in splits.items():
        part = datasets.Dataset.from_list(rows, features=schema)
        part.info.description, part.info.license = card["description"], license_id or "other"
        parts[name] = part
    datasets.DatasetDict(parts).save_to_disk(str(folder))
    (folder / "README.md").write_text(card["readme"], encoding="utf-8")
    task_file = folder / f"{task.task}-hf.yaml"
    task_file.write_text(round_trip_task(task), encoding="utf-8")
    return {"out": str(folder), "splits": {k: len(v) for k, v in splits.items()}, "warning": warning,
            "task_file": str(task_file), "task": f"{task.task}-hf",
            "push": PUSH_HINT.format(out=folder, name=task.task)}


def round_trip_task(task: Any) -> str:
    """The task as it was, reading its papers back from this folder through the ``hf`` dataset."""
    data = task.model_dump(mode="json", exclude={"source"})
    data["task"] = f"{task.task}-hf"
    data["description"] = f"{task.task}, read back from its `peerbench export hf` folder"
    data["dataset"] = {"name": "hf", "path": ".", "split": TEST_SPLIT}
    if task.train is not None:
        data["train"] = {"split": TRAIN_SPLIT}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def dataset_card(plan: Any, sizes: dict[str, int], license_id: str | None, warning: str | None,
                 run_config: dict[str, Any] | None, folder: Path) -> dict[str, str]:
    """README.md (Hub metadata in its YAML header) and the one-paragraph description stored in the data."""
    task = plan.task
    model = f" Reviews and decisions: {run_config['backend']}:{run_config['model']}." if run_config else ""
    summary = (f"peerbench task {task.task} (version {task.version}): {task.description.rstrip('.')}. Gold label: "
               f"{task.label_rule}; also reported: {', '.join(task.label_rules()[1:]) or 'none'}.{model}")
    header = {"license": license_id or "other", "pretty_name": f"peerbench {task.task}",
              "task_categories": ["text-classification"], "tags": ["peer-review", "peerbench"]}
    columns = ("`key` (venue/split/id), `id`, `venue`, `split`, `title`, `abstract`, `sections` "
               "(heading, text), `accepted` (the venue's decision, where known), `recommendations` (reviewer "
               "scores), `system_prompt` and `user_prompt` (as peerbench sends them, the body cut by characters to "
               f"fit {task.max_model_len} tokens with {task.generation.max_tokens} for the answer), `prompt_hash`, "
               "`cut_chars`, `gold` (one column per label rule: true = accept, empty = unknown)")
    if run_config:
        columns += ", `review`, `decision`, `p_accept` and `prompt_matches_run` (whether the run sent this prompt)"
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", f"# peerbench {task.task}", "",
             summary, ""]
    if warning:
        lines += [f"**{warning}**", ""]
    lines += ["Splits: " + ", ".join(f"`{k}` {v} papers" for k, v in sizes.items()) + ".", "",
              f"Columns: {columns}.", "",
              f"Run it again with peerbench: `peerbench run --include-path {folder} --task {task.task}-hf ...`.", "",
              "Push it to the Hub (peerbench never does):", "", "```",
              PUSH_HINT.format(out=folder, name=task.task), "```", ""]
    return {"description": summary + (f" {warning}" if warning else ""), "readme": "\n".join(lines)}
