from peerbench.pipeline.collect import combine_generations
from peerbench.records import Completion

A = Completion("... I recommend this paper for ACCEPTANCE.", p_accept=0.9, completion_tokens=10)
R = Completion("... I recommend this paper for REJECTION.", completion_tokens=10)
U = Completion("no verdict", completion_tokens=10)
F = Completion(error="HTTP 500: boom")


def test_the_first_generation_is_the_scored_review_and_p_accept_counts_every_answer():
    combined = combine_generations([R, A, A, U, F])
    assert "REJECTION" in combined.text  # a single sample, as the reference scores it
    assert combined.p_accept == 2 / 4  # the unparsed generation stays in the denominator
    assert combined.extra["decisions"] == ["REJECT", "ACCEPT", "ACCEPT", "UNPARSED"]
    assert combined.extra["majority"] is None  # 2 of 4 answers: no strict majority (the unparsed one votes neither)
    assert combine_generations([R, A, A, F]).extra["majority"] == "ACCEPT"  # 2 of 3 answers
    assert combined.extra["failed"] == 1 and combined.completion_tokens == 40
    assert combined.extra["mean_logprob_p_accept"] == 0.9


def test_failed_first_generations_are_skipped_ties_have_no_majority_and_all_failed_is_a_failure():
    combined = combine_generations([F, U, A])
    assert combined.text == "no verdict" and combined.p_accept == 0.5 and combined.extra["majority"] is None
    tie = combine_generations([R, A])
    assert "REJECTION" in tie.text and tie.p_accept == 0.5 and tie.extra["majority"] is None
    assert combine_generations([U, U]).p_accept == 0.0
    failed = combine_generations([F, F])
    assert failed.error.startswith("all 2 generations failed; first: HTTP 500")
