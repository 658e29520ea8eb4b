"""The judge stage: any registered backend grades the stored reviews of a run, point by point
against the human reviews (hit rates beside a leave-one-out human ceiling and a shuffle control)
and on a 1-5 rubric, and is itself measured (self-agreement; its grades of the human reviews
against the reviewers' own numbers). See docs/judge.md.

``prompts`` (package data, rendered) -> ``requests`` (keyed, order-randomised matching) -> ``work``
(one paper's requests and line) -> ``stage`` (dispatch, resume, the judgement directory) ->
``figures`` (metrics.json) -> ``tables`` (what the CLI prints); ``compare`` (compare's part) and
``in_sweep`` (a sweep's judge).
"""

from __future__ import annotations

from typing import Any


def judge(run_dir: Any, backend: str | None = None, model: str | None = None, **kwargs: Any) -> Any:
    """Grade a run's stored reviews with a judge backend (see :func:`peerbench.judging.stage.judge`)."""
    from peerbench.judging.stage import judge as _judge

    return _judge(run_dir, backend, model, **kwargs)
