from peerbench.records import Completion
from peerbench.pipeline.collect import combine_generations

A = Completion("... I recommend this paper for ACCEPTANCE.", p_accept=0.9, completion_tokens=10)
R = Completion("... I recommend this paper for REJECTION.", completion_tokens=10)
U = Completion("no verdict", completion_tokens=10)
F = Completion(error="HTTP 500: boom")


def test_majority_share_and_agreeing_text():
    combined = combine_generations([R, A, A, U, F])
    assert combined.p_accept == 2 / 3 and "ACCEPTANCE" in combined.text
    assert combined.extra["decisions"] == ["REJECT", "ACCEPT", "ACCEPT", "UNPARSED"]
    assert combined.extra["failed"] == 1 and combined.completion_tokens == 40
    assert combined.extra["mean_logprob_p_accept"] == 0.9


def test_ties_go_to_the_first_generation_and_nothing_parsed_means_no_probability():
    assert "REJECTION" in combine_generations([R, A]).text and combine_generations([R, A]).p_accept == 0.5
    assert combine_generations([U, U]).p_accept is None
    failed = combine_generations([F, F])
    assert failed.error.startswith("all 2 generations failed; first: HTTP 500")
