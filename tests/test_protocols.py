"""Reviewer protocols through the CLI against a loopback OpenAI-compatible server that records
every request: the AI Scientist's protocol request by request (their strings from prompts.json,
formatted as their perform_review formats them), its early stop, its averaged scores, a kill -9
between two calls and the resume that sends only the calls not yet answered."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import peerbench
from aiscientist_fixtures import text_of, write_benchmark
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

PROMPTS = json.loads((Path(__file__).resolve().parents[1] / "src" / "peerbench" / "data"
                      / "aiscientist_prompts.json").read_text(encoding="utf-8"))
EXAMPLE_PAPER = "# AN EXAMPLE PAPER\n\nIts {braced} text.\n"
EXAMPLE_REVIEW = "Summary: an example review.\nDecision: Accept"
# The ensemble's five choices: four readable reviews, the fifth without JSON (dropped, as theirs drops it).
ENSEMBLE = [
    {"Summary": "one", "Originality": 2, "Quality": 3, "Clarity": 2, "Significance": 2, "Soundness": 1,
     "Presentation": 3, "Contribution": 2, "Overall": 3, "Confidence": 5, "Decision": "Reject"},
    {"Summary": "two", "Originality": 3, "Quality": 3, "Clarity": 3, "Significance": 2, "Soundness": 2,
     "Presentation": 3, "Contribution": 2, "Overall": 4, "Confidence": 4, "Decision": "Reject"},
    {"Summary": "three", "Originality": 3, "Quality": 2, "Clarity": 2, "Significance": 3, "Soundness": 2,
     "Presentation": 2, "Contribution": 3, "Overall": 6, "Confidence": 9, "Decision": "Accept"},
    {"Summary": "four", "Originality": 2, "Quality": 2, "Clarity": 3, "Significance": 3, "Soundness": 3,
     "Presentation": 2, "Contribution": 3, "Overall": 8, "Confidence": 4, "Decision": "Accept"},
]
META = {"Summary": "meta", "Strengths": ["s"], "Weaknesses": ["w"], "Originality": 4, "Quality": 4, "Clarity": 4,
        "Significance": 4, "Questions": [], "Limitations": [], "Ethical Concerns": False, "Soundness": 4,
        "Presentation": 4, "Contribution": 4, "Overall": 9, "Confidence": 1, "Decision": "Accept"}
# Worked by hand: the mean of the readable reviews' in-range scores, rounded half to even
# (Clarity 2.5 -> 2; Confidence 9 is off the 1-5 scale: (5 + 4 + 4) / 3 -> 4; Overall 21 / 4 -> 5).
AVERAGED = {**META, "Originality": 2, "Quality": 2, "Clarity": 2, "Significance": 2, "Soundness": 2,
            "Presentation": 2, "Contribution": 2, "Overall": 5, "Confidence": 4}
# The aggregated review's assistant turn, the f-string in their perform_review (retyped here as the expected value).
AGGREGATED = ("\nTHOUGHT:\nI will start by aggregating the opinions of 5 reviewers that I previously obtained."
              "\n\nREVIEW JSON:\n```json\n" + json.dumps(AVERAGED) + "\n```\n")


def as_reply(review: dict, thought: str = "Fine.") -> str:
    return f"THOUGHT:\n{thought}\n\nREVIEW JSON:\n```json\n{json.dumps(review)}\n```\n"


def reflection_reply(paper: str, round_: int) -> str:
    """c3 stops after round 3 ("I am done"); e5 never does."""
    review = {**AVERAGED, "Overall": 2 + round_, "Decision": "Reject" if round_ < 3 else "Accept"}
    done = paper == "c3" and round_ == 3
    return as_reply(review, f"Round {round_} of {paper}." + (" I am done" if done else ""))


def paper_of(body: dict) -> str:
    found = re.search(r"# PAPER (\w+)", body["messages"][1]["content"]) if len(body["messages"]) > 1 else None
    return found.group(1).lower() if found else "?"


def reply(body: dict) -> str:
    messages = body["messages"]
    if messages[0]["content"].startswith("You are an Area Chair"):
        return as_reply(META)
    if "choice_index" in body:
        index = body["choice_index"]
        return "no JSON here, sorry" if index == 4 else as_reply(ENSEMBLE[index])
    users = [m for m in messages if m["role"] == "user"]
    return reflection_reply(paper_of(body), len(users))


@pytest.fixture
def bench(tmp_path):
    root = write_benchmark(tmp_path / "bench")
    fewshot = root / "ai_scientist" / "fewshot_examples"
    (fewshot / "132_automated_relational.txt").write_text(EXAMPLE_PAPER, encoding="utf-8")
    (fewshot / "132_automated_relational.json").write_text(json.dumps({"review": EXAMPLE_REVIEW}), encoding="utf-8")
    return root


def server(**kwargs) -> OpenAIChatServer:
    return OpenAIChatServer(tokenize=False, reply=reply, **kwargs)


def run_args(srv, bench: Path, out: Path, ids: str, *more: str) -> list[str]:
    return ["run", "--task", "aiscientist-iclr2022", "--backend", "openai", "--model", srv.model, "--base-url",
            srv.base_url, "--data-dir", str(bench), "--ids", ids, "--out", str(out), "--resamples", "20", "-q",
            "--protocol", "aiscientist", *more]


def expected_requests(paper: str, reflections: int) -> list[dict]:
    """Every request of one paper, in order, built from prompts.json as their perform_review builds it."""
    system = {"role": "system", "content": PROMPTS["reviewer_system_prompt_neg"]}
    fewshot = PROMPTS["fewshot_intro"] + PROMPTS["fewshot_item_fstring"].format(paper_text=EXAMPLE_PAPER,
                                                                                review_text=EXAMPLE_REVIEW)
    base = {"role": "user", "content": PROMPTS["neurips_form"] + fewshot + "\nHere is the paper you are asked to "
            f"review:\n```\n{text_of(paper)}\n```"}
    settings = {"max_tokens": 4096, "top_p": 1.0, "seed": 0}
    meta_user = PROMPTS["neurips_form"] + "".join(f"\nReview {i + 1}/4:\n```\n{json.dumps(r)}\n```\n"
                                                  for i, r in enumerate(ENSEMBLE))
    requests = [
        {"messages": [system, base], "n": 5, "temperature": 0.75, **settings},
        {"messages": [{"role": "system", "content": PROMPTS["meta_reviewer_system_prompt"].replace(
            "{reviewer_count}", "4")}, {"role": "user", "content": meta_user}], "temperature": 0.1, **settings}]
    history = [system, base, {"role": "assistant", "content": AGGREGATED}]
    for round_ in range(2, reflections + 1):
        # sent unformatted: "Round {current_round}/{num_reflections}." as their code sends it
        history = [*history, {"role": "user", "content": PROMPTS["reviewer_reflection_prompt"]}]
        requests.append({"messages": history, "temperature": 0.1, **settings})
        history = [*history, {"role": "assistant", "content": reflection_reply(paper, round_)}]
        if "I am done" in history[-1]["content"]:
            break
    return requests


def samples_of(out: Path) -> dict[str, dict]:
    return {json.loads(line)["paper_id"]: json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()}


def test_the_ai_scientist_protocol_request_by_request(bench, isolated_home, tmp_path):
    assert "{current_round}" in PROMPTS["reviewer_reflection_prompt"]
    with server() as srv:
        result = run_cli(run_args(srv, bench, tmp_path / "run", "c3,e5", "-o", "num_reflections=5",
                                  "-o", "num_reviews_ensemble=5", "-o", "num_fs_examples=1"),
                         cli_env(isolated_home, OPENAI_API_KEY="unused"))
        assert result.returncode == 0, result.stderr
        meta_requests = [b for b in srv.bodies if b["messages"][0]["content"].startswith("You are an Area Chair")]
    # both papers' meta-reviews are the same request (the same four reviews): the second is never sent,
    # its answer comes from the cache unless both were in flight together
    assert 1 <= len(meta_requests) <= 2
    for paper, rounds in (("c3", 3), ("e5", 5)):
        expected = expected_requests(paper, rounds)
        own = [{k: b[k] for k in ("messages", "n", "temperature", "max_tokens", "top_p", "seed") if k in b}
               for b in srv.bodies if paper_of(b) == paper]
        assert own == [expected[0], *expected[2:]], paper
        assert {k: meta_requests[0][k] for k in expected[1]} == expected[1]
    samples = samples_of(tmp_path / "run")
    c3, e5 = samples["c3"], samples["e5"]
    assert c3["completion"] == reflection_reply("c3", 3) and c3["extra"]["stopped_early"] is True
    assert (c3["decision"], c3["rating"], c3["extra"]["calls"]) == ("ACCEPT", 5.0, 4)
    assert (e5["decision"], e5["rating"], e5["extra"]["calls"], e5["extra"]["rounds"]) == ("ACCEPT", 7.0, 6, 4)
    assert [entry["label"] for entry in e5["trace"]] == ["ensemble", "meta-review", "reflection 2/5",
                                                          "reflection 3/5", "reflection 4/5", "reflection 5/5"]
    assert e5["trace"][0]["settings"]["n"] == 5 and len(e5["trace"][0]["replies"]) == 5
    assert e5["trace"][-1]["replies"][0]["text"] == reflection_reply("e5", 5)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["protocol"] == {"name": "aiscientist", "options": {
        "num_fs_examples": 1, "num_reflections": 5, "num_reviews_ensemble": 5, "temperature": None,
        "ensemble_temperature": 0.75}}


def test_without_reflections_the_review_is_the_averaged_one_and_every_call_comes_from_the_cache(
        bench, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with server() as srv:
        first = run_cli(run_args(srv, bench, tmp_path / "five", "c3", "--num-reflections", "5",
                                 "--num-reviews-ensemble", "5"), env)
        assert first.returncode == 0, first.stderr
        sent_before = len(srv.bodies)
        second = run_cli(run_args(srv, bench, tmp_path / "one", "c3", "--num-reviews-ensemble", "5"), env)
        assert second.returncode == 0, second.stderr
        assert len(srv.bodies) == sent_before  # the ensemble and the meta-review are the same two requests
    sample = samples_of(tmp_path / "one")["c3"]
    assert sample["completion"] == AGGREGATED and sample["rating"] == 5.0 and sample["decision"] == "ACCEPT"
    assert sample["cached"] is True and [e["cached"] for e in sample["trace"]] == [True, True]
    assert json.loads((tmp_path / "one" / "config.json").read_text())["run_identity"] != \
        json.loads((tmp_path / "five" / "config.json").read_text())["run_identity"]


def test_kill_9_between_rounds_then_the_same_command_sends_only_the_unanswered_calls(bench, isolated_home, tmp_path):
    held, arrived = threading.Event(), threading.Event()

    def holding(body):
        if len([m for m in body["messages"] if m["role"] == "user"]) == 3 and not held.is_set():
            arrived.set()  # reflection round 3: the run is killed while this request waits
            held.wait(20)
        return reply(body)

    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False, reply=holding) as srv:
        args = run_args(srv, bench, tmp_path / "run", "e5", "-o", "num_reflections=5", "-o", "num_reviews_ensemble=5")
        process = subprocess.Popen([sys.executable, "-m", "peerbench.cli", *args], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert arrived.wait(60), "round 3 never arrived"
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        finally:
            held.set()
        first_run = len(srv.bodies)
        assert first_run == 4  # ensemble, meta-review, rounds 2 and 3 (the last one unanswered)
        resumed = run_cli(args, env)
        assert resumed.returncode == 0, resumed.stderr
        again = srv.bodies[first_run:]
    expected = expected_requests("e5", 5)
    keys = ("messages", "n", "temperature", "max_tokens", "top_p", "seed")
    assert [{k: b[k] for k in keys if k in b} for b in again] == expected[3:]  # rounds 3, 4, 5 only
    sample = samples_of(tmp_path / "run")["e5"]
    assert [e["cached"] for e in sample["trace"]] == [True, True, True, False, False, False]
    assert sample["completion"] == reflection_reply("e5", 5)


def test_a_failed_call_fails_the_paper_and_the_rerun_asks_for_the_missing_calls_only(bench, isolated_home, tmp_path):
    broken = {"meta": True}

    def failing(body):
        if body["messages"][0]["content"].startswith("You are an Area Chair") and broken["meta"]:
            raise RuntimeError("the server falls over")  # the connection drops: a failed call
        return reply(body)

    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False, reply=failing) as srv:
        args = run_args(srv, bench, tmp_path / "run", "c3", "-o", "num_reflections=3", "-o", "num_reviews_ensemble=5",
                        "-o", "max_retries=0")
        first = run_cli(args, env)
        # its only paper failed: the run stops as a broken server's does, the failure stored
        assert first.returncode == 2 and "every request failed so far (1)" in first.stderr
        sample = samples_of(tmp_path / "run")["c3"]
        assert sample["decision"] == "FAILED" and sample["error"].startswith("call 2 (meta-review): ")
        count = len(srv.bodies)
        broken["meta"] = False
        second = run_cli(args, env)
        assert second.returncode == 0, second.stderr
        again = srv.bodies[count:]
    # the meta-review, then rounds 2 and 3; the ensemble's answer came from the cache
    assert [b["messages"][0]["content"] for b in again] == [PROMPTS["meta_reviewer_system_prompt"].replace(
        "{reviewer_count}", "4"), PROMPTS["reviewer_system_prompt_neg"], PROMPTS["reviewer_system_prompt_neg"]]
    assert [len(b["messages"]) for b in again] == [2, 4, 6]
    assert samples_of(tmp_path / "run")["c3"]["decision"] == "ACCEPT"


def test_protocol_options_are_checked_before_any_request(bench, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with server() as srv:
        bad = run_cli(run_args(srv, bench, tmp_path / "run", "c3", "-o", "num_reflections=0"), env)
        assert bad.returncode == 2 and "-o num_reflections" not in bad.stderr
        assert "--num-reflections: Input should be greater than or equal to 1" in bad.stderr
        samples = run_cli(run_args(srv, bench, tmp_path / "run2", "c3", "--samples", "3"), env)
        assert samples.returncode == 2 and "--samples: protocol 'aiscientist' makes its own calls" in samples.stderr
        other = run_cli(["run", "--task", "peerread95", "--backend", "openai", "--model", srv.model, "--base-url",
                         srv.base_url, "--protocol", "aiscientist", "--out", str(tmp_path / "run3")], env)
        assert other.returncode == 2 and "task 'peerread95' has prompt" in other.stderr
        assert srv.bodies == []


def test_report_shows_calls_tokens_and_time_per_paper_and_compare_pairs_two_protocols(bench, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused", COLUMNS="250")
    with server() as srv:
        single = run_cli([*run_args(srv, bench, tmp_path / "single", "c3,e5")[:-2], "--protocol", "single"], env)
        assert single.returncode == 0, single.stderr
        multi = run_cli(run_args(srv, bench, tmp_path / "multi", "c3,e5", "--num-reflections", "5",
                                 "--num-reviews-ensemble", "5"), env)
        assert multi.returncode == 0, multi.stderr
    report = run_cli(["report", str(tmp_path / "multi"), "--json"], env)
    protocol = json.loads(report.stdout)["protocol"]
    samples = samples_of(tmp_path / "multi")
    # c3: 4 calls, e5: 6; each paper's tokens are its calls' sums, as the server counted them (words)
    assert (protocol["calls"], protocol["calls_per_paper"]) == (10, {"mean": 5.0, "min": 4, "max": 6})
    assert protocol["tokens_per_paper"]["prompt"] == sum(
        entry["prompt_tokens"] for s in samples.values() for entry in s["trace"]) / 2
    assert protocol["wall_s_per_paper"]["max"] == max(s["extra"]["wall_s"] for s in samples.values())
    assert "single" not in json.loads(run_cli(["report", str(tmp_path / "single"), "--json"], env).stdout)
    table = run_cli(["report", str(tmp_path / "multi")], env)
    assert "protocol aiscientist (ensemble_temperature=0.75, num_fs_examples=1, num_reflections=5, " \
           "num_reviews_ensemble=5): 10 calls for 2 papers, 5.00 per paper (4-6)" in " ".join(table.stdout.split())
    compared = run_cli(["compare", str(tmp_path / "single"), str(tmp_path / "multi"), "--resamples", "20"], env)
    assert compared.returncode == 0, compared.stderr
    assert "B: openai:tiny-reviewer · aiscientist" in compared.stdout and "McNemar" in compared.stdout


def test_peerbench_protocols_lists_each_protocol_with_its_options(isolated_home):
    listed = run_cli(["protocols"], cli_env(isolated_home))
    assert listed.returncode == 0, listed.stderr
    assert "--num-reflections (or -o num_reflections=VALUE)  default 1" in listed.stdout
    assert "-o samples=VALUE  default 5" in listed.stdout
    assert re.search(r"^single  \(peerbench\.protocols\.builtin\)$", listed.stdout, re.MULTILINE)


def test_self_consistency_is_samples_k_same_run_same_requests(peerread_root, isolated_home, tmp_path):
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    with OpenAIChatServer(tokenize=False) as srv:
        args = ["run", "--task", "peerread-conll2016", "--backend", "openai", "--model", srv.model, "--base-url",
                srv.base_url, "--data-dir", str(peerread_root), "--limit", "2", "--resamples", "20", "-q", "--no-cache"]
        samples = run_cli([*args, "--samples", "3"], env, cwd=tmp_path)
        assert samples.returncode == 0, samples.stderr
        sent = len(srv.bodies)
        protocol = run_cli([*args, "--protocol", "self-consistency", "-o", "samples=3"], env, cwd=tmp_path)
        assert protocol.returncode == 0, protocol.stderr
        assert sent == 6 and len(srv.bodies) == 6  # the same run directory, resumed: nothing left to ask
        clash = run_cli([*args, "--protocol", "self-consistency", "-o", "samples=3", "--samples", "4"], env,
                        cwd=tmp_path)
        assert clash.returncode == 2 and "was given samples=3; give one of the two" in clash.stderr
    (run_dir,) = (tmp_path / "peerbench-runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["samples_per_paper"] == 3


class OneCall(peerbench.Protocol):
    name = "one-call"

    async def review(self, prompt, call):
        reply = (await call(prompt.messages, label="only"))[0]
        return peerbench.Review(reply.text, reply.p_accept)


class Vote(peerbench.Protocol):
    """Three choices of one request, P(accept) their share: on a backend without n choices, three
    requests with seeds seed..seed+2, the very requests of --samples 3."""

    name = "vote"

    async def review(self, prompt, call):
        replies = await call(prompt.messages, n=3, label="votes")
        accepts = sum(prompt.decide(r.text) is peerbench.Decision.ACCEPT for r in replies)
        return peerbench.Review(replies[0].text, accepts / 3)


class SeedEcho(peerbench.Backend):
    """Accepts on odd seeds; records every request (a backend that cannot give n choices)."""

    name = "seed-echo"
    default_model = "stub"
    seen: list = []

    async def generate(self, requests):
        SeedEcho.seen.extend(r.generation.seed for r in requests)
        return [peerbench.Completion(text=f"seed {r.generation.seed}\n{peerbench.decision_line(r.generation.seed % 2)}")
                for r in requests]


class Mine:
    @peerbench.hookimpl
    def register_protocols(self, register):
        register("one-call", OneCall)
        register("vote", Vote)

    @peerbench.hookimpl
    def register_backends(self, register):
        register("seed-echo", SeedEcho)


def test_a_protocols_call_is_the_one_call_paths_request_and_cache_entry(peerread_root, isolated_home, tmp_path,
                                                                       inline_plugin):
    inline_plugin(Mine(), "mine")
    with OpenAIChatServer(tokenize=False) as srv:
        common = dict(task="peerread-conll2016", backend="openai", model=srv.model, data_dir=peerread_root, limit=2,
                      resamples=10, backend_options={"base_url": srv.base_url})
        single = peerbench.run(out=tmp_path / "single", **common)
        assert len(srv.bodies) == 2
        one = peerbench.run(out=tmp_path / "one", protocol="one-call", **common)
        assert len(srv.bodies) == 2  # both calls came from the cache: the same key for the same request
    assert [s["completion"] for s in one.samples] == [s["completion"] for s in single.samples]
    assert [s["p_accept"] for s in one.samples] == [s["p_accept"] for s in single.samples]
    assert all(s["trace"][0]["cached"] and s["trace"][0]["label"] == "only" for s in one.samples)


def test_n_choices_on_a_backend_without_them_are_the_requests_of_samples_k(peerread_root, isolated_home, tmp_path,
                                                                          inline_plugin):
    inline_plugin(Mine(), "mine")
    common = dict(task="peerread-conll2016", backend="seed-echo", data_dir=peerread_root, limit=2, resamples=10)
    SeedEcho.seen = []
    k3 = peerbench.run(out=tmp_path / "k3", samples=3, **common)
    assert sorted(SeedEcho.seen) == [0, 0, 1, 1, 2, 2]
    vote = peerbench.run(out=tmp_path / "vote", protocol="vote", **common)
    assert len(SeedEcho.seen) == 6  # nothing new was asked
    assert [s["p_accept"] for s in vote.samples] == [pytest.approx(1 / 3)] * 2 == [s["p_accept"] for s in k3.samples]
    assert sorted(e["label"] for e in vote.samples[0]["trace"]) == ["votes 1/3", "votes 2/3", "votes 3/3"]


def test_calls_of_different_papers_overlap_up_to_the_concurrency(bench, isolated_home, tmp_path):
    """4 papers x 3 sequential calls at 0.3 s each: 3.6 s one call at a time, 0.9 s when the papers
    overlap; the bound is never passed."""
    env = cli_env(isolated_home, OPENAI_API_KEY="unused")
    spans = {}
    for concurrency in (2, 4):
        with server(latency=0.3) as srv:
            result = run_cli(run_args(srv, bench, tmp_path / f"c{concurrency}", "c3,e5,g7,h8", "--num-reflections", "3",
                                      "--concurrency", str(concurrency), "--no-cache"), env)
            assert result.returncode == 0, result.stderr
            times = sorted(t for ts in srv.arrivals.values() for t in ts)
            assert len(times) == 12 and srv.max_in_flight == concurrency
            spans[concurrency] = times[-1] - times[0] + 0.3
    assert spans[4] < 2.0 and spans[2] < 3.2


def test_without_an_ensemble_or_examples_the_reflections_continue_the_one_review(bench, isolated_home, tmp_path):
    with server() as srv:
        result = run_cli(run_args(srv, bench, tmp_path / "run", "e5", "-o", "num_fs_examples=0",
                                  "-o", "num_reflections=3"), cli_env(isolated_home, OPENAI_API_KEY="unused"))
        assert result.returncode == 0, result.stderr
        bodies = [{k: b[k] for k in ("messages", "n", "temperature") if k in b} for b in srv.bodies]
    system = {"role": "system", "content": PROMPTS["reviewer_system_prompt_neg"]}
    base = {"role": "user", "content": PROMPTS["neurips_form"] + "\nHere is the paper you are asked to review:\n```\n"
            + text_of("e5") + "\n```"}
    reflect = {"role": "user", "content": PROMPTS["reviewer_reflection_prompt"]}
    first, second = ({"role": "assistant", "content": reflection_reply("e5", r)} for r in (1, 2))
    assert bodies == [{"messages": [system, base], "temperature": 0.1},
                      {"messages": [system, base, first, reflect], "temperature": 0.1},
                      {"messages": [system, base, first, reflect, second, reflect], "temperature": 0.1}]
    sample = samples_of(tmp_path / "run")["e5"]
    assert sample["completion"] == reflection_reply("e5", 3) and sample["extra"]["rounds"] == 2
