"""The AI Scientist's reviewer protocol, as ``perform_review`` runs it (``ai_scientist/perform_review.py``
and ``ai_scientist/llm.py`` of SakanaAI/AI-Scientist at commit 9dffdc445c2596ffa871b5588377e9f12558febc).

Every string comes from ``data/aiscientist_prompts.json`` (their constants, never retyped) except
the aggregated review's assistant turn, an f-string inside ``perform_review`` (:data:`AGGREGATED`).
Call by call, for one paper (docs/protocols.md):

1. ``num_reviews_ensemble`` = 1: one review at ``temperature``. Above 1: one request for
   ``n = num_reviews_ensemble`` choices at ``ensemble_temperature`` (0.75, fixed in their code);
   each choice's JSON is read (unreadable ones dropped); then the meta-review: system
   ``meta_reviewer_system_prompt`` with the count of readable reviews, user ``neurips_form`` and
   each review as ``Review i/n``; the first readable review stands in when the meta-review has no
   JSON; the nine scores are replaced by the rounded mean of the readable reviews' in-range
   scores (Python's round: half to even, as numpy's); the conversation continues from the first
   choice's, its reply replaced by the aggregated review.
2. ``num_reflections - 1`` more rounds: ``reviewer_reflection_prompt`` as the next user turn, sent
   with ``{current_round}`` and ``{num_reflections}`` unformatted (their code never formats it);
   each round's JSON replaces the review; a reply containing ``I am done`` ends the rounds.

The user turn is the task's prepared prompt (``neurips_form`` + the paper) with the few-shot block
put after ``neurips_form``. What their code raises on (a reflection without JSON, no readable
score to average) leaves the paper without a review: an empty review, UNPARSED, with
``extra["protocol_error"]``; their script drops such a paper, peerbench counts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from peerbench.errors import ConfigError, DataError
from peerbench.hookspecs import hookimpl
from peerbench.protocols import Call, PaperPrompt, Protocol, ProtocolOptions, Review

FEWSHOT_EXAMPLES = ("132_automated_relational", "attention", "2_carpe_diem")  # their fewshot_papers order
FEWSHOT_DIR = "ai_scientist/fewshot_examples"
AGGREGATED = ("\nTHOUGHT:\nI will start by aggregating the opinions of {count} reviewers that I previously "
              "obtained.\n\nREVIEW JSON:\n```json\n{review}\n```\n")
SCORES = (("Originality", (1, 4)), ("Quality", (1, 4)), ("Clarity", (1, 4)), ("Significance", (1, 4)),
          ("Soundness", (1, 4)), ("Presentation", (1, 4)), ("Contribution", (1, 4)), ("Overall", (1, 10)),
          ("Confidence", (1, 5)))
DONE = "I am done"


class ProtocolStop(Exception):
    """Where their code raises: the paper gets no review."""


class AIScientistOptions(ProtocolOptions):
    num_fs_examples: int = Field(1, ge=0, le=len(FEWSHOT_EXAMPLES), json_schema_extra={"flag": "--num-fs-examples"},
                                 description="few-shot example reviews before the paper (their files, in order)")
    num_reflections: int = Field(1, ge=1, json_schema_extra={"flag": "--num-reflections"},
                                 description="1 + the reflection rounds at most (5: up to 4 rounds)")
    num_reviews_ensemble: int = Field(1, ge=1, json_schema_extra={"flag": "--num-reviews-ensemble"},
                                      description="reviews drawn as n choices of one request, then a meta-review")
    temperature: float | None = Field(None, ge=0, description="review, meta-review and reflections "
                                      "(default: the task's, 0.1 in the aiscientist tasks as in their script)")
    ensemble_temperature: float = Field(0.75, ge=0, description="the ensemble's draws (0.75, fixed in their code)")


class AIScientist(Protocol):
    name = "aiscientist"
    Options = AIScientistOptions

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.fewshot = ""

    def check(self, task: Any) -> None:
        if task.prompt_template().name != "aiscientist":
            raise ConfigError(f"--protocol aiscientist: task {task.task!r} has prompt "
                              f"{task.prompt_template().name!r}; it needs a task with prompt: aiscientist "
                              "(aiscientist-iclr2022, aiscientist-iclr2022-overall6)")

    async def setup(self, context: Any) -> None:
        self.fewshot = fewshot_block(self.options.num_fs_examples, getattr(context.dataset, "root", None))

    def calls_per_paper(self) -> str:
        return ("(1, or 2 with an ensemble: its n-choice request and the meta-review) + up to "
                "num_reflections - 1")

    async def review(self, prompt: PaperPrompt, call: Call) -> Review:
        from peerbench import aiscientist_prompts

        strings = aiscientist_prompts.prompts()
        system, user = prompt.messages[0], prompt.messages[1]
        form = strings["neurips_form"]
        if not user["content"].startswith(form):
            raise ConfigError("--protocol aiscientist: the prepared prompt does not start with neurips_form")
        base = {"role": "user", "content": form + self.fewshot + user["content"][len(form):]}
        state: dict[str, Any] = {"rounds": 0}
        try:
            history = await self.first_review(call, system, base, prompt, state)
            await self.reflect(call, system, history, prompt, state)
        except ProtocolStop as stop:
            state.pop("text", None)
            return Review("", extra={**state, "protocol_error": str(stop)})
        return Review(state.pop("text"), extra=state)

    def temperature(self, prompt: PaperPrompt) -> float:
        chosen = self.options.temperature
        return prompt.generation.temperature if chosen is None else chosen

    async def first_review(self, call: Call, system: dict, base: dict, prompt: PaperPrompt,
                           state: dict[str, Any]) -> list[dict[str, str]]:
        from peerbench.json_review import extract_json_between_markers

        count = self.options.num_reviews_ensemble
        if count == 1:
            reply = (await call([system, base], label="review", temperature=self.temperature(prompt)))[0]
            state["text"] = reply.text
            return [base, {"role": "assistant", "content": reply.text}]
        replies = await call([system, base], n=count, label="ensemble", temperature=self.options.ensemble_temperature)
        parsed = [r for r in (extract_json_between_markers(reply.text) for reply in replies) if r is not None]
        state["ensemble_readable"] = len(parsed)
        review = await self.meta_review(call, parsed, prompt)
        try:
            review = parsed[0] if review is None else review
            for score, (low, high) in SCORES:
                values = [r[score] for r in parsed if score in r and high >= r[score] >= low]
                review[score] = int(round(sum(values) / len(values)))
        except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise ProtocolStop(f"aggregating the ensemble: {type(exc).__name__}: {exc}") from None
        text = AGGREGATED.format(count=count, review=json.dumps(review))
        state["text"] = text
        return [base, {"role": "assistant", "content": text}]

    async def meta_review(self, call: Call, reviews: list[Any], prompt: PaperPrompt) -> Any:
        from peerbench import aiscientist_prompts
        from peerbench.json_review import extract_json_between_markers

        strings = aiscientist_prompts.prompts()
        items = "".join(strings["meta_review_item_fstring"].format(i=i + 1, n=len(reviews), review_json=json.dumps(r))
                        for i, r in enumerate(reviews))
        messages = [{"role": "system", "content": strings["meta_reviewer_system_prompt"].format(
                        reviewer_count=len(reviews))},
                    {"role": "user", "content": strings["neurips_form"] + items}]
        reply = (await call(messages, label="meta-review", temperature=self.temperature(prompt)))[0]
        return extract_json_between_markers(reply.text)

    async def reflect(self, call: Call, system: dict, history: list[dict[str, str]], prompt: PaperPrompt,
                      state: dict[str, Any]) -> None:
        from peerbench import aiscientist_prompts
        from peerbench.json_review import extract_json_between_markers

        reflection = {"role": "user", "content": aiscientist_prompts.prompts()["reviewer_reflection_prompt"]}
        for j in range(self.options.num_reflections - 1):
            history = [*history, reflection]
            reply = (await call([system, *history], label=f"reflection {j + 2}/{self.options.num_reflections}",
                                temperature=self.temperature(prompt)))[0]
            history.append({"role": "assistant", "content": reply.text})
            state["rounds"], state["text"] = j + 1, reply.text
            if extract_json_between_markers(reply.text) is None:
                raise ProtocolStop(f"reflection {j + 2}: Failed to extract JSON from LLM output")
            if DONE in reply.text:
                state["stopped_early"] = True
                break


def fewshot_block(count: int, root: Any) -> str:
    """Their ``get_review_fewshot_examples(count)``: the intro, then each example paper's text and
    review, read from the dataset's copy of their repository (``peerbench data pull aiscientist``)."""
    if count == 0:
        return ""
    from peerbench import aiscientist_prompts

    if root is None:
        raise ConfigError("--num-fs-examples: the few-shot examples come from the aiscientist dataset's files; "
                          "use -o num_fs_examples=0 with another dataset")
    strings = aiscientist_prompts.prompts()
    block = strings["fewshot_intro"]
    for name in FEWSHOT_EXAMPLES[:count]:
        base = Path(root) / FEWSHOT_DIR / name
        try:
            paper_text = base.with_suffix(".txt").read_text(encoding="utf-8")
            review_text = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))["review"]
        except FileNotFoundError as exc:
            raise DataError(f"{exc.filename}: missing; the few-shot example comes from the AI Scientist's repository "
                            "(peerbench data pull aiscientist fetches the first; copy the others beside it)") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{base.with_suffix('.json')}: no 'review' field in a JSON object") from None
        block += strings["fewshot_item_fstring"].format(paper_text=paper_text, review_text=review_text)
    return block


@hookimpl
def register_protocols(register):
    register("aiscientist", AIScientist, description="the AI Scientist's reviewer: few-shot, ensemble + "
             "meta-review, reflection rounds (SakanaAI/AI-Scientist @ 9dffdc4)")
