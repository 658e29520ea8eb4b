"""P(accept) at the decision word, and the Retry-After / backoff arithmetic."""

import email.utils
import math
import time

import pytest

from local_tokenizers import scenario, train

from peerbench.backends.logprobs import (TokenLogprob, decision_probability, p_accept_source, probability_from_ids,
                                         token_starts)
from peerbench.pipeline.retry import backoff_delay, retry_after_seconds

SETUPS = [("byte-level", 400, True), ("sentencepiece", 400, True), ("sentencepiece", 80, True),
          ("byte-level", 250, False)]  # 250: the words cut to " " then "A" / "R": "R" is the reject token there
SETUP_IDS = [f"{kind}-{vocab}" for kind, vocab, _ in SETUPS]


@pytest.fixture(scope="module", params=SETUPS, ids=SETUP_IDS)
def setup(request):
    kind, vocab, distractors = request.param
    return train(kind, vocab), distractors


def from_ids(tok, case):
    return probability_from_ids(case.ids, lambda text: tok.encode(text, add_special_tokens=False).ids,
                                lambda ids: tok.decode(ids), lambda i: case.logprobs[i])


def from_strings(tok, case, text=True):
    by_id = {i: tok.decode([i]) for case_ids in case.logprobs for i in case_ids}
    tokens = [TokenLogprob(piece, case.logprobs[i][token], [(by_id[t], lp) for t, lp in case.logprobs[i].items()])
              for i, (token, piece) in enumerate(zip(case.ids, case.pieces))]
    return decision_probability(tokens, case.text if text else None)


@pytest.mark.fast
@pytest.mark.parametrize("word", ["REJECTION", "ACCEPTANCE"])
def test_p_accept_by_id_and_by_string_agree_for_both_tokenizer_kinds(setup, word):
    """A review quotes ACCEPTANCE, then decides: P is read at the final word, from exactly the two
    words' first differing tokens, whether the tokens come as ids or as strings decoded alone."""
    tok, distractors = setup
    decided, other = 0.45, 0.05
    case = scenario(tok, word, decided, other, distractors)
    expected = other / (decided + other) if word == "REJECTION" else decided / (decided + other)
    for found in (from_ids(tok, case), from_strings(tok, case)):
        assert found.token_index == case.decision_index
        assert found.p_accept == pytest.approx(expected, rel=1e-12) and found.mass == pytest.approx(0.5, rel=1e-12)


@pytest.mark.fast
@pytest.mark.parametrize("kind,vocab", [(kind, vocab) for kind, vocab, distractors in SETUPS if distractors])
@pytest.mark.parametrize("word,expected", [("REJECTION", 0.1), ("ACCEPTANCE", 0.9)])
def test_distractors_do_not_move_p(kind, vocab, word, expected):
    """" a" (for a major revision) and "R" sit among the alternatives and change nothing."""
    tok = train(kind, vocab)
    with_them, without = scenario(tok, word, distractors=True), scenario(tok, word, distractors=False)
    for read in (from_ids, from_strings):
        assert read(tok, with_them).p_accept == pytest.approx(expected, rel=1e-12)
        assert read(tok, with_them).p_accept == read(tok, without).p_accept


@pytest.mark.fast
def test_sentencepiece_pieces_decoded_alone_lose_their_spaces_and_still_give_p():
    tok = train("sentencepiece")
    case = scenario(tok)
    assert "".join(case.pieces) != case.text and "forREJECTION." in "".join(case.pieces)
    assert from_strings(tok, case, text=False) is None  # the joined strings hold no decision line
    assert from_strings(tok, case).p_accept == pytest.approx(0.1, rel=1e-12)


def tokens(*pieces, at=None, top=(), chosen=0.0):
    return [TokenLogprob(p, chosen if i == at else 0.0, top if i == at else ()) for i, p in enumerate(pieces)]


@pytest.mark.fast
def test_only_the_counterpart_written_like_the_chosen_token_counts():
    top = [(" ACC", math.log(0.1)), (" a", math.log(0.2)), ("R", math.log(0.1)), (" RE", math.log(0.05)),
           (" AC", math.log(0.04)), ("ACC", math.log(0.01))]
    review = tokens("I recommend this paper for", " REJ", "ECTION", ".", at=1, top=[(" REJ", math.log(0.5)), *top],
                    chosen=math.log(0.5))
    found = decision_probability(review)  # " ACC" is the other word's token; " AC" is shorter, "ACC" lacks the space
    assert found.token_index == 1 and found.p_accept == pytest.approx(0.1 / 0.6) and found.mass == pytest.approx(0.6)


@pytest.mark.fast
def test_emphasis_and_lowercase_under_the_lenient_parser():
    top = [("**", math.log(0.5)), ("**accept", math.log(0.1)), ("**REJECT", math.log(0.2)), ("**ACC", math.log(0.05))]
    pieces = tokens("I recommend this paper for ", "**REJECT", "ION**.", at=1, top=top, chosen=math.log(0.3))
    assert decision_probability(pieces, parser="lenient").p_accept == pytest.approx(0.05 / 0.35)
    assert decision_probability(pieces) is None  # the card's regex reads no decision there: no P(accept) either
    lower = tokens("I recommend this paper for ", "reject", "ion.", at=1, chosen=math.log(0.6),
                   top=[("accept", math.log(0.2)), ("ACCEPT", math.log(0.2))])
    assert decision_probability(lower, parser="lenient").p_accept == pytest.approx(0.25)


@pytest.mark.fast
def test_lower_case_later_line_or_two_decisions_in_the_final_part():
    top = [("ACC", math.log(0.6)), ("REJ", math.log(0.1))]
    review = tokens("## Final Recommendation\n", "I recommend this paper for ", "ACC", "EPTANCE.",
                    " (I recommend this paper for rejection if the proofs fail.)", at=2, top=top, chosen=math.log(0.6))
    found = decision_probability(review)
    assert found.token_index == 2 and found.p_accept == pytest.approx(0.6 / 0.7)
    ambiguous = tokens("## Final Recommendation\n", "I recommend this paper for ", "ACC", "EPTANCE.\n",
                       "I recommend this paper for REJECTION.", at=2, top=top)
    assert decision_probability(ambiguous) is None


@pytest.mark.fast
def test_no_decision_line_or_no_counterpart_and_byte_fragments():
    assert decision_probability([]) is None
    assert decision_probability(tokens("A review without a verdict.")) is None
    assert decision_probability(tokens("I recommend this paper for ", "ACC", at=1, chosen=float("-inf"),
                                       top=[("maybe", math.log(0.9))])) is None
    # a character split over two tokens decodes alone to U+FFFD: the text resumes after it
    pieces = tokens("Caf", "\ufffd", "\ufffd", " ok.\n\nI recommend this paper for ", "REJ", "ECTION.", at=4,
                    chosen=math.log(0.3), top=[("ACC", math.log(0.1))])
    found = decision_probability(pieces, "Caf\u00e9 ok.\n\nI recommend this paper for REJECTION.")
    assert found.token_index == 4 and found.p_accept == pytest.approx(0.25)
    assert token_starts(["a", "b"], "a c") is None


def test_through_the_openai_backend_and_a_loopback_server():
    """The wire format of a vLLM server: tokens decoded alone, as vLLM does, for both tokenizer kinds."""
    import asyncio

    from openai_server import OpenAIChatServer

    from peerbench.backends.openai_compat import OpenAIBackend
    from peerbench.records import ChatRequest, GenerationConfig

    for kind in ("byte-level", "sentencepiece"):
        tok = train(kind)
        case = scenario(tok)

        def reply(title, tok=tok, case=case):
            return case.text, [{"token": piece, "logprob": case.logprobs[i][token],
                                "top_logprobs": [{"token": tok.decode([t]), "logprob": lp}
                                                 for t, lp in case.logprobs[i].items()]}
                               for i, (token, piece) in enumerate(zip(case.ids, case.pieces))]

        with OpenAIChatServer(logprob_reply=reply, tokenize=False) as server:
            backend = OpenAIBackend(server.model, base_url=server.base_url, check_server=False, tokenizer="chars")
            request = ChatRequest("p1", [{"role": "user", "content": "Title: T"}], GenerationConfig(max_tokens=50),
                                  logprobs=True)

            async def go(backend=backend, request=request):
                try:
                    return (await backend.generate([request]))[0]
                finally:
                    await backend.aclose()

            completion = asyncio.run(go())
        assert completion.p_accept == pytest.approx(0.1, rel=1e-12), kind
        assert completion.extra == {"logprobs_mode": "server", "decision_mass": 0.5}


@pytest.mark.fast
def test_the_source_of_p_is_named_for_the_tables():
    samples = [{"p_accept": 0.2, "extra": {"logprobs_mode": "processed_logprobs"}},
               {"p_accept": None, "extra": {"logprobs_mode": "raw_logprobs"}}]
    assert p_accept_source(samples) == "processed logprobs (after temperature/top-p)"
    assert p_accept_source([{"p_accept": 0.4, "extra": {"samples": 5}}]) == "share of 5 samples"
    assert p_accept_source(samples[1:]) is None


@pytest.mark.fast
def test_retry_after_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({"retry-after": "3600"}) == 60.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_seconds({"retry-after": date}) <= 5.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


@pytest.mark.fast
def test_backoff_grows_is_capped_and_jittered():
    delays = [backoff_delay(n, 1.0, cap=8.0) for n in range(6) for _ in range(50)]
    assert min(delays) >= 0.5 and max(delays) < 12.0
    assert max(backoff_delay(0, 1.0) for _ in range(50)) < 1.5 < min(backoff_delay(3, 1.0) for _ in range(50))


@pytest.mark.fast
def test_the_table_names_the_source_of_p_under_the_probability_rows():
    from peerbench.reporting.tables import rule_table

    entry = {"overall": {"n": 3, "n_with_p_accept": 3, "metrics": {}}, "description": "gold: rating >= 4"}
    metrics = {"bootstrap": {"confidence": 0.95}, "p_accept_source": "processed logprobs (after temperature/top-p)"}
    table = rule_table(metrics, "recommendation>=4", entry)
    assert table.caption == "gold: rating >= 4\nP(accept) from processed logprobs (after temperature/top-p)"
    assert rule_table({"bootstrap": {"confidence": 0.95}}, "r", entry).caption == "gold: rating >= 4"
