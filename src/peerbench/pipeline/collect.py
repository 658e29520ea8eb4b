"""Stage 5, collect; and ``--samples k``: k generations per paper, P(accept) = their share of ACCEPTANCE.

For a model whose server gives no logprobs (hosted reasoning models), repeated sampling at the
task's temperature is the only probability there is. The decision scored is the first
generation's, a single sample as the reference's card reports it (a majority vote of k would be
another metric); the majority is kept beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from peerbench.echo import find_echo, prompt_text, without_echo
from peerbench.parsing import DEFAULT_PARSER, parse_decision
from peerbench.pipeline.prepare import Item, build_sample
from peerbench.records import Completion, Decision, Sample


def combine_generations(completions: Sequence[Completion], parser: str = DEFAULT_PARSER,
                        prompt: str = "") -> Completion:
    """k completions of one paper -> one: the first answered generation's review and decision, and
    P(accept) = the share of answered generations that say ACCEPTANCE.

    Failed generations are left out (and counted). An unparsed or ambiguous generation is an answer
    that did not accept: it stays in the denominator, so a model that often gives no decision does
    not look surer than it is. Each generation is read from its own words, what it echoed of
    ``prompt`` (the messages it was sent) blanked first.
    """
    ok = [c for c in completions if not c.error]
    failed = len(completions) - len(ok)
    if not ok:
        first = completions[0]
        return Completion(error=f"all {len(completions)} generations failed; first: {first.error}",
                          extra={"samples": len(completions), "failed": failed})
    decisions = [parse_decision(without_echo(c.text, find_echo(c.text, prompt)), parser) for c in ok]
    share = sum(d is Decision.ACCEPT for d in decisions) / len(decisions)
    # a strict majority of the answered generations, an undecided one voting for neither side
    accepts, rejects = decisions.count(Decision.ACCEPT), decisions.count(Decision.REJECT)
    majority = (Decision.ACCEPT if accepts * 2 > len(decisions) else
                Decision.REJECT if rejects * 2 > len(decisions) else None)
    chosen = ok[0]
    logprob_ps = [c.p_accept for c in ok if c.p_accept is not None]
    extra = {"samples": len(completions), "failed": failed, "decisions": [d.value for d in decisions],
             "majority": majority.value if majority else None, "completions": [c.text for c in ok]}
    if logprob_ps:
        extra["mean_logprob_p_accept"] = sum(logprob_ps) / len(logprob_ps)
    return Completion(text=chosen.text, p_accept=share, finish_reason=chosen.finish_reason,
                      prompt_tokens=sum(c.prompt_tokens or 0 for c in ok) or None,
                      completion_tokens=sum(c.completion_tokens or 0 for c in ok) or None, extra=extra)


class Collector:
    """Stage 5, collect: one sample per paper. With k generations a paper's sample waits for all k
    and merges them (:func:`combine_generations`); ``on_sample`` receives each finished sample."""

    def __init__(self, samples_per_paper: int, parser: str, store_prompts: bool,
                 on_sample: Callable[[Sample], None]):
        self.k = samples_per_paper
        self.parser = parser
        self.store_prompts = store_prompts
        self.on_sample = on_sample
        self._partial: dict[str, list[tuple[int, Completion, float, bool]]] = {}

    def add(self, item: Item, completion: Completion, latency: float, cached: bool) -> None:
        if self.k > 1:
            got = self._partial.setdefault(item.paper.key, [])
            got.append((item.index, completion, latency, cached))
            if len(got) < self.k:
                return
            got.sort(key=lambda entry: entry[0])
            completion = combine_generations([entry[1] for entry in got], self.parser,
                                             prompt_text(item.request.messages))
            latency = sum(entry[2] for entry in got) / self.k
            cached = all(entry[3] for entry in got)
            del self._partial[item.paper.key]
        self.on_sample(build_sample(item, completion, latency, cached, self.parser, self.store_prompts))
