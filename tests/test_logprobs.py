"""P(accept) at the decision word, and the Retry-After / backoff arithmetic."""

import email.utils
import math
import time

import pytest

from peerbench.backends.logprobs import TokenLogprob, decision_probability
from peerbench.pipeline.retry import backoff_delay, retry_after_seconds

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)


def tokens(*pieces, at=None, top=()):
    return [TokenLogprob(p, 0.0, top if i == at else ()) for i, p in enumerate(pieces)]


def test_probability_is_read_at_the_decision_word_of_the_last_line():
    top = [(" ACC", math.log(0.7)), (" REJ", math.log(0.2)), (" the", math.log(0.1))]
    found = decision_probability(tokens("Quoted: I recommend this paper for REJECTION.\n\n", "I recommend this paper for",
                                        " ACC", "EPTANCE", ".", at=2, top=top))
    assert found.p_accept == pytest.approx(0.7 / 0.9) and found.mass == pytest.approx(0.9) and found.token_index == 2


def test_emphasis_and_lowercase_and_whole_word_tokens_under_the_lenient_parser():
    top = [("**", math.log(0.5)), ("acceptance.", math.log(0.1)), ("REJECTION.", math.log(0.3))]
    pieces = tokens("I recommend this paper for ", "**", "REJECTION.", at=2, top=top)
    assert decision_probability(pieces, "lenient").p_accept == pytest.approx(0.1 / 0.4)
    assert decision_probability(pieces) is None  # the card's regex reads no decision there: no P(accept) either


def test_p_accept_is_read_where_the_parser_read_the_decision_and_only_from_decision_words():
    top = [("ACC", math.log(0.6)), (" a", math.log(0.2)), ("R", math.log(0.1)), (" re", math.log(0.1))]
    review = tokens("## Final Recommendation\n", "I recommend this paper for ", "ACC", "EPTANCE.",
                    " (I recommend this paper for rejection if the proofs fail.)", at=2, top=top)
    found = decision_probability(review)
    # the card's case-sensitive line decides ACCEPT; the lower-case one later is not a decision line
    assert found.token_index == 2 and found.p_accept == pytest.approx(0.6 / 0.7) and found.mass == pytest.approx(0.7)
    ambiguous = tokens("## Final Recommendation\n", "I recommend this paper for ", "ACC", "EPTANCE.\n",
                       "I recommend this paper for REJECTION.", at=2, top=top)
    assert decision_probability(ambiguous) is None


def test_no_decision_line_or_no_alternative_of_either_kind_gives_none():
    assert decision_probability([]) is None
    assert decision_probability(tokens("A review without a verdict.")) is None
    only_other = [("maybe", math.log(0.9))]
    assert decision_probability([TokenLogprob("I recommend this paper for ", 0.0),
                                 TokenLogprob("ACC", float("-inf"), only_other)]) is None


def test_the_chosen_token_counts_even_when_missing_from_the_top_list():
    found = decision_probability([TokenLogprob("I recommend this paper for ", 0.0),
                                  TokenLogprob("REJ", math.log(0.4), [("ACC", math.log(0.6))]),
                                  TokenLogprob("ECTION.", 0.0)])
    assert found.p_accept == pytest.approx(0.6)


def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "3600"}) == 60.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_seconds({"retry-after": date}) <= 5.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_backoff_grows_is_capped_and_jittered():
    delays = [backoff_delay(n, 1.0, cap=8.0) for n in range(6) for _ in range(50)]
    assert min(delays) >= 0.5 and max(delays) < 12.0
    assert max(backoff_delay(0, 1.0) for _ in range(50)) < 1.5 < min(backoff_delay(3, 1.0) for _ in range(50))
