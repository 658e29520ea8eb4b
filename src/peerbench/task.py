"""Tasks: dataset + selection + label rule + prompt + generation settings, declared in YAML.

The YAML is flat and validated by pydantic with unknown keys refused; it can only name
registered things (datasets, label rules, metrics, prompts), never run code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from peerbench.errors import ConfigError, first_problem
from peerbench.hookspecs import hookimpl
from peerbench.parsing import DEFAULT_PARSER
from peerbench.prompts import DEFAULT_PROMPT, PromptTemplate
from peerbench.records import GenerationConfig
from peerbench.yaml_files import load_yaml


class DatasetSpec(BaseModel):
    """``name`` picks the dataset plugin; every other key is that dataset's own selection argument."""

    model_config = ConfigDict(extra="allow")
    name: str

    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# The bounds of every generation setting (docs/tasks.md): what servers accept, finite numbers only.
MAX_TOKENS_BOUND, MAX_TEMPERATURE, MAX_SEED = 1_000_000, 2.0, 2**63 - 1


class GenerationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    max_tokens: int = Field(1400, gt=0, le=MAX_TOKENS_BOUND)
    temperature: float = Field(0.2, ge=0, le=MAX_TEMPERATURE)
    top_p: float = Field(0.9, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


class CitedRow(BaseModel):
    """A published row shown beside a run's numbers under ``label_rule``: cited from ``source``, never
    computed from the run's data (the table says so)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    label_rule: str = "decision"
    source: str
    metrics: dict[str, float]


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    version: int
    description: str = ""
    dataset: DatasetSpec
    train: dict[str, Any] | None = None
    label_rule: str = "recommendation>=4"
    report_label_rules: list[str] = Field(default_factory=lambda: ["decision"])
    prompt: str = DEFAULT_PROMPT
    system_prompt: str | None = None
    user_template: str | None = None
    template_syntax: Literal["format", "dollar"] | None = None
    parser: Literal["reference", "lenient", "aiscientist-json", "aiscientist-json-overall6"] = DEFAULT_PARSER
    max_model_len: int = Field(12288, gt=0, le=10_000_000)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    metrics: list[str] | None = None
    unparsed: Literal["wrong", "reject", "exclude"] = "wrong"
    cited: list[CitedRow] | None = None
    source: str | None = Field(None, exclude=True)

    def prompt_template(self) -> PromptTemplate:
        return PromptTemplate.resolve(self.prompt, self.system_prompt, self.user_template, self.template_syntax)

    def generation_config(self) -> GenerationConfig:
        return GenerationConfig(**self.generation.model_dump())

    def label_rules(self) -> list[str]:
        return [self.label_rule, *(r for r in self.report_label_rules if r != self.label_rule)]

    def fingerprint(self) -> str:
        """Changes whenever anything that decides the prompts or the gold labels changes."""
        template = self.prompt_template()
        payload = {**self.model_dump(mode="json", exclude={"cited"}),  # a citation reaches no request
                   "resolved_prompt": [template.system, template.user, template.syntax]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **changes: Any) -> Task:
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _validation_message(path: Path, exc: ValidationError) -> str:
    loc, message, kind = first_problem(exc)
    loc = loc or "(top level)"
    if kind == "extra_forbidden":
        return f"{path}: unknown field {loc!r}"
    if kind == "missing":
        return f"{path}: missing field {loc!r}"
    return f"{path}: field {loc!r}: {message}"


def load_task_file(path: Path) -> Task:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read task file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task file must be a mapping with at least 'task', 'version' and 'dataset'")
    try:
        task = Task(**data, source=str(path))
        task.prompt_template()
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return task


def tasks_from_path(path: str | Path, problems: list[ConfigError] | None = None) -> list[Task]:
    """The tasks of a YAML file or folder. With ``problems``, a broken file is collected there and
    the folder's other tasks still load; without it, the first broken file is the error."""
    path = Path(path)
    if path.is_file():
        return [load_task_file(path)]
    if not path.is_dir():
        raise ConfigError(f"--include-path {path}: no such file or directory")
    tasks = []
    for file in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
        try:
            tasks.append(load_task_file(file))
        except ConfigError as exc:
            if problems is None:
                raise
            problems.append(exc)
    return tasks


def builtin_task_dir() -> Path:
    """The built-in task YAML folder: ``peerbench/tasks`` inside a wheel (force-included from the
    repository's top-level ``tasks/``), else that top-level folder itself (a source checkout or an
    editable install)."""
    packaged = Path(__file__).with_name("tasks")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "tasks"


@hookimpl
def register_tasks(register):
    register(builtin_task_dir())


def load_task(name: str, include_paths: Iterable[str | Path] = ()) -> Task:
    """A registered task by name, or one from the user's ``--include-path`` directories."""
    from peerbench.errors import UnknownNameError
    from peerbench.registry import registries

    registered = registries().tasks
    extra: dict[str, Task] = {}
    broken: list[ConfigError] = []  # one broken file hides none of its folder's other tasks
    for include in include_paths:
        for task in tasks_from_path(include, broken):
            if task.task in registered or task.task in extra:
                other = registered.get(task.task).value.source if task.task in registered else extra[task.task].source
                raise ConfigError(f"{task.source}: task {task.task!r} is already defined in {other}")
            extra[task.task] = task
    if name in extra:
        return extra[name]
    if name in registered:
        return registered.get(name).value
    if broken:  # the task may be the one in a broken file: say what is wrong with it
        raise broken[0]
    raise UnknownNameError("task", name, [*registered.names(), *extra])
