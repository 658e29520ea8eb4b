"""peerbench <-> lm-evaluation-harness, both ways.

``export_task`` writes a task folder lm-eval runs as it is: the prompts peerbench would send
(rendered, truncated) as a local JSONL, a YAML that hands them over unchanged (system prompt as
the task description, user prompt as the document text), and a utils.py that scores like
peerbench. ``import_results`` turns an lm-eval run made with ``--log_samples`` back into a
peerbench run directory, so that ``peerbench report`` and ``peerbench compare`` work on it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from peerbench.errors import ConfigError, DataError
from peerbench.records import Decision, Sample
from peerbench.reporting.scoring import DEFAULT_RESAMPLES

AGGREGATED = ("f1", "accuracy", "balanced_accuracy", "pred_accept_rate", "parse_failure_rate")
# What an imported run needs from the task's side of a peerbench config.json (scoring, report, compare).
TASK_CONFIG_KEYS = ("peerbench_version", "task", "task_version", "task_fingerprint", "task_definition", "dataset",
                    "label_rules", "primary_label_rule", "choices", "generation", "max_model_len", "limit", "metrics")


def _gold_label(value: bool | None) -> str:
    return "" if value is None else Decision.of(value).value


def export_task(task_name: str, out: str | Path, *, data_dir: str | Path | None = None,
                include_paths: tuple = (), max_model_len: int | None = None, limit: int | None = None,
                name: str | None = None) -> Path:
    from peerbench.interop import exported_selection
    from peerbench.pipeline.store import stable_hash
    from peerbench.parsing import JSON_PARSERS
    from peerbench.prompts import render
    from peerbench.task import load_task

    parser = load_task(task_name, include_paths).parser
    if parser in JSON_PARSERS:  # the exported utils.py carries only the decision-line parsers
        raise ConfigError(f"--task {task_name}: parser {parser!r} reads a JSON review, which an exported lm-eval task "
                          "cannot; score lm-eval's outputs with peerbench run --backend replay instead")
    plan, papers, rules = exported_selection(task_name, data_dir=data_dir, include_paths=include_paths,
                                             max_model_len=max_model_len, limit=limit)
    task = plan.task
    template, generation = task.prompt_template(), task.generation_config()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lm_name = name or task.task.replace("-", "_")
    docs = []
    for paper in papers:
        rendered = render(paper, template, max_model_len=task.max_model_len, max_tokens=generation.max_tokens)
        golds = {rule: r.label(paper) for rule, r in rules.items()}
        docs.append({"id": paper.key, "paper_id": paper.id, "venue": paper.venue, "split": paper.split,
                     "title": paper.title, "system": rendered.messages[0]["content"],
                     "user": rendered.messages[1]["content"], "gold": golds,
                     "gold_label": _gold_label(golds[task.label_rule]), "accepted": paper.accepted,
                     "mean_recommendation": paper.mean_recommendation, "truncation": rendered.truncation,
                     "prompt_hash": stable_hash(rendered.messages)[:16], "unparsed_policy": task.unparsed,
                     "parser": task.parser})
    data_file = (folder / f"{lm_name}.jsonl").resolve()
    data_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    shutil.copyfile(Path(__file__).with_name("lm_eval_utils.py"), folder / "utils.py")
    metrics = "\n".join(f"  - metric: {m}\n    aggregation: !function utils.agg_{m}\n    higher_is_better: "
                        f"{'false' if m == 'parse_failure_rate' else 'true'}" for m in AGGREGATED)
    spec = {"task": lm_name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
            "test_split": "test", "output_type": "generate_until", "description": "{{system}}",
            "doc_to_text": "{{user}}", "doc_to_target": "{{gold_label}}",
            "generation_kwargs": {"until": [], "max_gen_toks": generation.max_tokens,
                                  "temperature": generation.temperature, "top_p": generation.top_p,
                                  "do_sample": generation.temperature > 0},
            "metadata": {"version": task.version, "peerbench_task": task.task,
                         "peerbench_task_fingerprint": task.fingerprint(),
                         "peerbench_config": {k: plan.config[k] for k in TASK_CONFIG_KEYS}}}
    text = yaml.safe_dump(spec, sort_keys=False, width=1000)
    text += "process_results: !function utils.process_results\nmetric_list:\n" + metrics + "\n"
    (folder / f"{lm_name}.yaml").write_text(text)
    return folder


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.rglob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def import_results(results_dir: str | Path, out: str | Path, *, resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0) -> dict[str, Any]:
    """An lm-eval output folder (run with --log_samples) -> a scored peerbench run directory per task."""
    folder = Path(results_dir)
    results_file = _newest(folder, "results_*.json")
    if results_file is None:
        raise DataError(f"{folder}: no lm-eval results_*.json here (run lm_eval with --output_path)")
    results = json.loads(results_file.read_text())
    configs = results.get("configs") or {}
    imported = []
    for task_name, task_config in configs.items():
        if "peerbench_config" not in (task_config.get("metadata") or {}):
            continue
        config = _imported_config(results, results_file, task_config["metadata"]["peerbench_config"])
        samples = [_sample_of(json.loads(line), config) for line in
                   _samples_file(results_file, task_name).read_text().splitlines()]
        target = Path(out) if len(configs) == 1 else Path(out) / task_name
        metrics = _write_run(target, config, samples, resamples=resamples, seed=seed)
        imported.append({"task": task_name, "run_dir": str(target), "samples": len(samples),
                         "lm_eval_metrics": {k.split(",")[0]: v for k, v in results["results"][task_name].items()
                                             if k.split(",")[0] in AGGREGATED and not k.startswith("alias")},
                         "metrics": metrics})
    if not imported:
        raise DataError(f"{results_file}: no task exported by peerbench in these results")
    return {"imported": imported}


def _samples_file(results_file: Path, task_name: str) -> Path:
    stamp = results_file.stem.removeprefix("results_")
    found = _newest(results_file.parent, f"samples_{task_name}_{stamp}.jsonl") or \
        _newest(results_file.parent, f"samples_{task_name}_*.jsonl")
    if found is None:
        raise DataError(f"{results_file.parent}: no samples_{task_name}_*.jsonl; rerun lm_eval with --log_samples")
    return found


def _imported_config(results: dict[str, Any], results_file: Path, exported: dict[str, Any]) -> dict[str, Any]:
    """The exported task's config, with lm-eval as the backend and its own identity."""
    from peerbench.pipeline.store import stable_hash

    config = dict(exported)
    run_config = results.get("config") or {}
    model_args = run_config.get("model_args")
    config.update(backend="lm-eval", model=str(run_config.get("model") or "lm-eval"),
                  options={"model_args": model_args if isinstance(model_args, str) else json.dumps(model_args)},
                  imported_from=str(results_file.resolve()))
    config["run_identity"] = stable_hash(config)[:10]
    return config


def _sample_of(row: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """One logged lm-eval sample as a peerbench sample, parsed by the task's own parser."""
    from peerbench.parsing import parse_decision

    doc = row["doc"]
    responses = row.get("filtered_resps") or row.get("resps") or [""]
    text = responses[0][0] if isinstance(responses[0], list) else responses[0]
    parser = (config.get("choices") or {}).get("parser", "reference")
    return Sample(id=doc["id"], paper_id=doc["paper_id"], venue=doc["venue"], split=doc["split"], title=doc["title"],
                  gold=doc["gold"], accepted=doc.get("accepted"), mean_recommendation=doc.get("mean_recommendation"),
                  prompt_hash=doc["prompt_hash"], truncation=doc["truncation"], completion=text,
                  decision=parse_decision(text, parser).value).to_json()


def _write_run(target: Path, config: dict[str, Any], samples: list[dict[str, Any]], *, resamples: int,
               seed: int) -> dict[str, Any]:
    from peerbench.pipeline.store import RunDir
    from peerbench.reporting.scoring import score_stored

    with RunDir(target) as run_dir:
        if run_dir.read_samples():
            raise ConfigError(f"{target}: already holds samples; import into a new folder")
        run_dir.claim(config)
        for sample in samples:
            run_dir.append(sample)
        metrics = score_stored(target, config, samples, resamples=resamples, seed=seed)
        run_dir.write_metrics(metrics)
    return metrics
