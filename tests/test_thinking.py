"""Thinking models through the CLI: the reasoning (a server's reasoning_content, or a leading
<think> from a server without a parser) is stored apart from the review and never decides; a
thinking reply cut by the budget is a failure named as such; the budget options reach the request."""

from __future__ import annotations

import json
import re

import pytest
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

TRACE = "The method looks new. I recommend this paper for ACCEPTANCE. Hmm, but the baselines are weak."
ANSWERS = ["\n\n## Review\nWeak baselines.\n\nI recommend this paper for REJECTION.",
           "\n\n## Review\nI cannot decide."]  # the second paper's answer has no decision line


def answer_for(body: dict) -> str:
    title = re.search(r"^Title: (.*)$", "\n".join(m["content"] for m in body["messages"]), re.MULTILINE).group(1)
    number = int(re.search(r"number (\d+)", title).group(1))  # the fixture's first two papers: 13 and 25
    return ANSWERS[number > 20]


def run_args(srv, root, out, *more) -> list[str]:
    return ["run", "--task", "peerread-conll2016", "--backend", "openai", "--model", srv.model, "--base-url",
            srv.base_url, "--data-dir", str(root), "--limit", "2", "--out", str(out), "--resamples", "20", "-q", *more]


def stored(out) -> dict[str, dict]:
    return {s["id"]: s for s in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}


def test_reasoning_content_and_an_inline_think_give_the_same_sample_and_the_trace_never_decides(
        peerread_root, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False, reply=answer_for, reasoning=lambda body: TRACE, logprobs=False) as parsed:
        first = run_cli(run_args(parsed, peerread_root, tmp_path / "parser"), env)
        assert first.returncode == 0, first.stderr
    with OpenAIChatServer(tokenize=False, reply=lambda body: f"<think>{TRACE}</think>{answer_for(body)}",
                          logprobs=False) as inline:
        second = run_cli(run_args(inline, peerread_root, tmp_path / "inline"), env)
        assert second.returncode == 0, second.stderr
    a, b = stored(tmp_path / "parser"), stored(tmp_path / "inline")
    assert a.keys() == b.keys() and len(a) == 2
    for key in a:
        assert {k: v for k, v in a[key].items() if k != "latency_s"} == {k: v for k, v in b[key].items()
                                                                          if k != "latency_s"}
        assert a[key]["extra"]["reasoning"] == TRACE and a[key]["completion"] in ANSWERS
    # the answer decides: REJECTION where it says so, UNPARSED where it says nothing, whatever the trace says
    assert sorted(s["decision"] for s in a.values()) == ["REJECT", "UNPARSED"]


def test_a_thinking_reply_cut_by_the_budget_is_a_failure_named_as_such(peerread_root, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False, reply=lambda body: "<think>" + TRACE, finish_reason=lambda body: "length",
                          logprobs=False) as srv:
        result = run_cli(run_args(srv, peerread_root, tmp_path / "cut"), env)
    assert result.returncode == 2 and "every request failed so far (2)" in result.stderr
    for sample in stored(tmp_path / "cut").values():
        assert sample["decision"] == "FAILED"
        assert sample["error"].startswith("cut by the token budget while thinking, before any answer "
                                          "(finish reason length)")
    with OpenAIChatServer(tokenize=False, reply=lambda body: "## Review\nA long review that ran out",
                          finish_reason=lambda body: "length", logprobs=False) as srv:
        plain = run_cli(run_args(srv, peerread_root, tmp_path / "plain"), env)
    assert plain.returncode == 0  # no reasoning: a review cut short is scored as ever (UNPARSED here)
    assert {s["decision"] for s in stored(tmp_path / "plain").values()} == {"UNPARSED"}


def test_the_reasoning_budget_options_reach_the_request_and_the_run_identity(peerread_root, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False, reply=answer_for, logprobs=False) as srv:
        plain = run_cli(run_args(srv, peerread_root, tmp_path / "plain"), env)
        budget = run_cli(run_args(srv, peerread_root, tmp_path / "budget", "--reasoning-effort", "low",
                                  "-o", "max_completion_tokens=3000"), env)
        assert plain.returncode == 0 and budget.returncode == 0, budget.stderr
        bad = run_cli(run_args(srv, peerread_root, tmp_path / "bad", "--reasoning-effort", "huge"), env)
        assert bad.returncode == 2 and bad.stderr.startswith("Error: --reasoning-effort: Input should be")
        last = srv.bodies[-1]
    assert (last["reasoning_effort"], last["max_completion_tokens"]) == ("low", 3000) and "max_tokens" not in last
    assert "reasoning_effort" not in srv.bodies[0] and srv.bodies[0]["max_tokens"] == 1400
    identity = [json.loads((tmp_path / d / "config.json").read_text())["run_identity"] for d in ("plain", "budget")]
    assert identity[0] != identity[1]


@pytest.mark.parametrize("text, reasoning, answer", [
    ("<think>a</think>b", "a", "b"),
    ("  <think>\nx\n</think>\n\nI recommend", "\nx\n", "\n\nI recommend"),
    ("<think>never closed", "never closed", ""),
    ("no think <think>x</think>", None, "no think <think>x</think>"),
])
def test_split_thinking(text, reasoning, answer):
    from peerbench.thinking import split_thinking

    assert split_thinking(text) == (reasoning, answer)


def test_logprob_tokens_are_cut_to_the_answer_where_they_spell_the_reasoning_too():
    from peerbench.backends.logprobs import TokenLogprob
    from peerbench.thinking import answer_tokens

    tokens = [TokenLogprob(t, 0.0, []) for t in ["<think>", "I recommend ACC", "</think>", "\n\nI recommend", " REJ"]]
    assert [t.token for t in answer_tokens(tokens, "\n\nI recommend REJ")] == ["\n\nI recommend", " REJ"]
    assert answer_tokens(tokens[3:], "\n\nI recommend REJ") == tokens[3:]  # the tokens are the answer already
    assert answer_tokens(tokens, "ommend REJ") == tokens  # the cut falls inside a token: left for the caller to refuse
    assert answer_tokens(tokens, "something else") == tokens
