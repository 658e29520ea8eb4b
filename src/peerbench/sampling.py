"""``--samples k``: k generations per paper, the share of ACCEPTANCE among them as P(accept).

For a model whose server gives no logprobs (hosted reasoning models), repeated sampling at the
task's temperature is the only probability there is. The stored review is one whose decision is
the majority's, so that the text and the decision of a sample always agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from peerbench.parsing import DEFAULT_PARSER, parse_decision
from peerbench.records import Completion, Decision


def combine_generations(completions: Sequence[Completion], parser: str = DEFAULT_PARSER) -> Completion:
    """k completions of one paper -> one: majority decision, P(accept) = accept share of the parsed ones.

    Failed generations are left out (and counted); unparsed and ambiguous ones count in no direction. With no
    parsed decision there is no probability. A tie goes to the earliest generation's decision.
    """
    ok = [c for c in completions if not c.error]
    failed = len(completions) - len(ok)
    if not ok:
        first = completions[0]
        return Completion(error=f"all {len(completions)} generations failed; first: {first.error}",
                          extra={"samples": len(completions), "failed": failed})
    decisions = [parse_decision(c.text, parser) for c in ok]
    parsed = [d for d in decisions if d in (Decision.ACCEPT, Decision.REJECT)]
    share = sum(d is Decision.ACCEPT for d in parsed) / len(parsed) if parsed else None
    if share is None:
        chosen = ok[0]
    else:
        majority = Decision.ACCEPT if share > 0.5 else Decision.REJECT if share < 0.5 else parsed[0]
        chosen = ok[decisions.index(majority)]
    logprob_ps = [c.p_accept for c in ok if c.p_accept is not None]
    extra = {"samples": len(completions), "failed": failed, "decisions": [d.value for d in decisions],
             "completions": [c.text for c in ok]}
    if logprob_ps:
        extra["mean_logprob_p_accept"] = sum(logprob_ps) / len(logprob_ps)
    return Completion(text=chosen.text, p_accept=share, finish_reason=chosen.finish_reason,
                      prompt_tokens=sum(c.prompt_tokens or 0 for c in ok) or None,
                      completion_tokens=sum(c.completion_tokens or 0 for c in ok) or None, extra=extra)
