"""Baselines every reviewer must beat: always-accept, always-reject, and TF-IDF + logistic
regression trained on the task's train split under the task's own label rule.

Their review speaks the task's parser: the decision line, or, for the AI Scientist's JSON parsers,
a JSON review whose ``Decision`` and ``Overall`` (6 to accept, 5 to reject) carry the decision."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from peerbench.backends import Backend, BackendOptions, RunContext
from peerbench.errors import BackendError, ConfigError
from peerbench.hookspecs import hookimpl
from peerbench.labels import get_label_rule
from peerbench.parsing import JSON_PARSERS, decision_line
from peerbench.prompts import render
from peerbench.records import ChatRequest, Completion


class BaselineOptions(BackendOptions):
    max_features: int = Field(50000, gt=0)
    C: float = Field(1.0, gt=0)
    seed: int = 0


class BaselineBackend(Backend):
    name = "baseline"
    Options = BaselineOptions
    models: ClassVar[tuple[str, ...]] = ("always-accept", "always-reject", "tfidf-lr")
    default_model = "tfidf-lr"
    cacheable = False
    batch_size = 64
    in_process = False  # a small scikit-learn model: runs of it overlap fine

    def __init__(self, model: str | None = None, **options: Any):
        super().__init__(model, **options)
        self._pipeline = None

    async def setup(self, context: RunContext) -> None:
        if self.model != "tfidf-lr":
            return
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        rows = [(text, label) for text, label in self._train_rows(context) if label is not None]
        classes = {label for _, label in rows}
        if len(classes) < 2:
            raise BackendError(f"tfidf-lr: the train split of task {context.task.task!r} has {len(rows)} labelled "
                               f"papers and {len(classes)} class(es); it needs both accept and reject")
        opts = self.options
        self._pipeline = make_pipeline(
            TfidfVectorizer(max_features=opts.max_features, sublinear_tf=True, ngram_range=(1, 2), min_df=1),
            # Balanced weights: PeerRead is mostly positive, and an unweighted model says accept to everything.
            LogisticRegression(C=opts.C, class_weight="balanced", max_iter=2000, random_state=opts.seed),
        )
        self._pipeline.fit([t for t, _ in rows], [int(bool(label)) for _, label in rows])

    @staticmethod
    def _train_rows(context: RunContext) -> list[tuple[str, bool | None]]:
        """(prompt text, label under the task's rule) for each paper of the task's train split."""
        task = context.task
        if task.train is None:
            raise ConfigError(f"task {task.task!r} declares no train split, which tfidf-lr needs")
        template, generation = task.prompt_template(), task.generation_config()
        label = get_label_rule(task.label_rule).label
        rows = []
        for paper in context.load_papers(**task.train):
            rendered = render(paper, template, max_model_len=task.max_model_len, max_tokens=generation.max_tokens)
            rows.append((rendered.messages[-1]["content"], label(paper)))
        return rows

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        if self.model == "tfidf-lr":
            if self._pipeline is None:
                raise BackendError("tfidf-lr: setup() must run before generate()")
            probs = self._pipeline.predict_proba([r.user_text for r in requests])[:, 1]
            return [self._review(float(p) >= 0.5, float(p)) for p in probs]
        accept = self.model == "always-accept"
        return [self._review(accept, 1.0 if accept else 0.0) for _ in requests]

    def _review(self, accept: bool, p_accept: float) -> Completion:
        summary = f"Baseline reviewer '{self.model}'; P(accept) = {p_accept:.3f}."
        if self.decision_parser in JSON_PARSERS:  # the AI Scientist's JSON review: Overall 6 / 5 says no more
            review = {"Summary": summary, "Overall": 6 if accept else 5, "Decision": "Accept" if accept else "Reject"}
            return Completion(text=f"REVIEW JSON:\n```json\n{json.dumps(review)}\n```", p_accept=p_accept,
                              finish_reason="stop")
        text = f"## Summary\n{summary}\n\n## Final Recommendation\n{decision_line(accept)}"
        return Completion(text=text, p_accept=p_accept, finish_reason="stop")


@hookimpl
def register_backends(register):
    register("baseline", BaselineBackend,
             description="always-accept, always-reject, tfidf-lr (TF-IDF + logistic regression on the train split)")
