"""Exact answers for the core's small pieces (issue 26): truncation content on every render path,
the retry driver's waits and tries, redaction, label rules, probe statistics, the run directory's
raw file handling and the response cache."""

import asyncio
import json
import random

import numpy as np
import pytest

from peerbench.errors import (BackendError, ConfigError, UnknownNameError, register_secret, scrub,
                              url_has_credentials)
from peerbench.labels import DECISION, get_label_rule, recommendation_at_least
from peerbench.pipeline import retry
from peerbench.pipeline.probes import (CONTROL_TEXT, _length_matched, build_arms, compare_arm, insert_into_body,
                                       net_of_control)
from peerbench.pipeline.store import ResponseCache, RunDir, parse_samples, read_run
from peerbench.prompts import CHAT_TEMPLATE_MARGIN, CHARS_PER_TOKEN, PromptTemplate, paper_body, render
from peerbench.records import Completion, Paper, Section

pytestmark = pytest.mark.fast

LONG = Paper("9", "v", "Trees All The Way Down", "An abstract about trees.",
             [Section("1 Intro", "HEADWORD " + " ".join(f"w{i}" for i in range(3000)) + " TAILWORD")])
BODY = paper_body(LONG)
PROBE = "PROBE TEXT INSERTED HERE."


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def end_insert(body):
    return insert_into_body(body, PROBE, "end")


@pytest.mark.parametrize("prompt", ["reference", "reviewer-v1"])
@pytest.mark.parametrize("insert", [None, end_insert])
def test_char_truncation_keeps_the_head_and_everything_around_the_body(prompt, insert):
    template = PromptTemplate.resolve(prompt)
    rendered = render(LONG, template, max_model_len=4000, max_tokens=1000, insert=insert)
    wrap = insert or (lambda b: b)
    frame = sum(len(m["content"]) for m in template.messages(LONG, wrap("")))
    budget = int((4000 - 1000 - CHAT_TEMPLATE_MARGIN) * CHARS_PER_TOKEN) - frame
    assert rendered.messages == template.messages(LONG, wrap(BODY[:budget]))
    expected = {"method": "chars", "char_budget": budget, "cut_chars": len(BODY) - budget}
    assert rendered.truncation == ({**expected, "inserted": True} if insert else expected)
    user = rendered.messages[1]["content"]
    assert "HEADWORD" in user and "TAILWORD" not in user and LONG.title in user and LONG.abstract in user
    assert (PROBE in user) == (insert is not None)


@pytest.mark.parametrize("insert", [None, end_insert])
def test_token_truncation_keeps_the_longest_head_that_fits(insert):
    template = PromptTemplate.resolve()
    wrap = insert or (lambda b: b)
    rendered = render(LONG, template, max_model_len=2500, max_tokens=1000, count_tokens=words, insert=insert)
    budget = 2500 - 1000 - CHAT_TEMPLATE_MARGIN
    kept = len(BODY) - rendered.truncation["cut_chars"]
    assert rendered.messages == template.messages(LONG, wrap(BODY[:kept]))
    assert words(rendered.messages) == rendered.truncation["prompt_tokens"] <= budget
    assert words(template.messages(LONG, wrap(BODY[:kept + 1]))) > budget
    assert rendered.truncation["cut_tokens"] == words(template.messages(LONG, wrap(BODY))) - words(rendered.messages)
    assert rendered.truncation["method"] == "tokens" and rendered.truncation.get("inserted") == (insert and True)
    assert rendered.messages[1]["content"].count("HEADWORD") == 1


@pytest.mark.parametrize("count", [None, words])
def test_a_body_that_fits_is_sent_whole(count):
    short = Paper("1", "v", "T", "A", [Section("H", "one two three")])
    rendered = render(short, PromptTemplate.resolve(), max_model_len=4000, max_tokens=1000, count_tokens=count)
    assert rendered.messages == PromptTemplate.resolve().messages(short, "H\none two three")
    assert rendered.truncation["cut_chars"] == 0
    if count:
        assert rendered.truncation == {"method": "tokens", "prompt_tokens": words(rendered.messages), "cut_chars": 0,
                                       "cut_tokens": 0}


def test_paper_body_joins_sections_and_drops_margin_numbers():
    paper = Paper("1", "v", "T", "A", [Section(" 1 Intro ", "a\n 101 \nb\n1234"), Section(None, "c"),
                                       Section("Empty", " 202\n"), Section("", "")])
    assert paper_body(paper) == "1 Intro\na\nb\n1234\n\nc\n\nEmpty"


def test_injected_text_lands_where_asked():
    assert insert_into_body("p1\n\np2\n\np3", "X", "start") == "X\n\np1\n\np2\n\np3"
    assert insert_into_body("p1\n\np2\n\np3", "X", "end") == "p1\n\np2\n\np3\n\nX"
    assert insert_into_body("p1\n\np2\n\np3\n\np4", "X", "middle") == "p1\n\np2\n\nX\n\np3\n\np4"
    assert insert_into_body("", "X", "end") == "X"
    assert _length_matched("ab cd", 9) == "ab cd ab." and len(_length_matched(CONTROL_TEXT, 400)) <= 401
    arms = build_arms(["injection"], ["start", "end"])
    assert [a.name for a in arms][-1] == "control-end" and len(arms) == 8
    control = arms[3]
    assert control.meta["text"] == _length_matched(CONTROL_TEXT, max(len(a.meta["text"]) for a in arms[:3]))
    assert control.insert("body") == control.meta["text"] + "\n\nbody"
    with pytest.raises(ConfigError, match="--probe-position side"):
        build_arms(["injection"], ["side"])


def _runs(decisions):
    return {f"p{i}": {"decision": d, "error": None, "p_accept": None, "completion": d} for i, d in enumerate(decisions)}


def test_flip_rates_and_their_intervals_are_exact():
    clean = _runs(["REJECT", "REJECT", "REJECT", "REJECT", "ACCEPT", "ACCEPT", "UNPARSED"])
    changed = _runs(["ACCEPT", "REJECT", "UNPARSED", "ACCEPT", "REJECT", "ACCEPT", "UNPARSED"])
    changed["p6"]["error"] = "HTTP 500"  # unanswered: left out
    out = compare_arm(clean, changed, resamples=100, seed=4)
    assert (out["n"], out["n_unanswered"], out["clean_rejected"]) == (6, 1, 4)
    assert out["flip_reject_to_accept"] == 0.5 and out["reject_to_no_decision"] == 0.25
    assert out["flip_accept_to_reject"] == 0.5 and out["decision_changed"] == pytest.approx(4 / 6)
    assert out["accept_rate_clean"] == pytest.approx(2 / 6) and out["accept_rate_probed"] == pytest.approx(3 / 6)
    rng = np.random.default_rng(4)
    flips = np.array([1.0, 0.0, 0.0, 1.0])
    means = flips[rng.integers(0, 4, size=(100, 4))].mean(1)
    assert out["flip_reject_to_accept_ci"] == pytest.approx([np.quantile(means, 0.025), np.quantile(means, 0.975)])
    changed_any = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    means = changed_any[rng.integers(0, 6, size=(100, 6))].mean(1)
    assert out["decision_changed_ci"] == pytest.approx([np.quantile(means, 0.025), np.quantile(means, 0.975)])


def test_net_of_control_is_exact():
    clean = _runs(["REJECT"] * 5 + ["ACCEPT"])
    injected = _runs(["ACCEPT", "ACCEPT", "ACCEPT", "REJECT", "REJECT", "ACCEPT"])
    control = _runs(["ACCEPT", "REJECT", "REJECT", "ACCEPT", "REJECT", "REJECT"])
    out = net_of_control(clean, injected, control, resamples=80, seed=2)
    assert (out["n"], out["only_injected_flipped"], out["only_control_flipped"]) == (5, 2, 1)
    assert out["difference"] == pytest.approx(3 / 5 - 2 / 5) and out["p_value"] == 1.0
    fi, fc = np.array([1.0, 1, 1, 0, 0]), np.array([1.0, 0, 0, 1, 0])
    index = np.random.default_rng(2).integers(0, 5, size=(80, 5))
    diffs = (fi[index] - fc[index]).mean(1)
    assert out["ci"] == pytest.approx([np.quantile(diffs, 0.025), np.quantile(diffs, 0.975)])


def test_retry_after_is_read_in_every_form_and_capped():
    assert retry.retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry.retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry.retry_after_seconds({"retry-after-ms": "x", "retry-after": "9"}) == 9.0
    assert retry.retry_after_seconds({"retry-after": "600"}) == 60.0
    assert retry.retry_after_seconds({"retry-after": "-3"}) == 0.0
    assert retry.retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry.retry_after_seconds({"retry-after": "soon"}) is None
    assert retry.retry_after_seconds({}) is None and retry.retry_after_seconds(None) is None


def test_backoff_doubles_is_capped_and_jittered_by_half(monkeypatch):
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert [retry.backoff_delay(a, 1.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0]
    monkeypatch.setattr(random, "random", lambda: 0.5)
    assert retry.backoff_delay(2, 0.25) == 1.0 and retry.backoff_delay(3, 10.0, cap=7.0) == 7.0


def test_the_retry_driver_counts_tries_and_waits_as_told(monkeypatch):
    waits = []

    async def no_sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    monkeypatch.setattr(random, "random", lambda: 0.0)

    def calls(*outcomes):
        queue = list(outcomes)

        async def call():
            outcome = queue.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return call

    def judge(exc):
        return retry.Failure(str(exc), "again" in str(exc), 3.0 if "later" in str(exc) else None)

    drive = retry.complete_with_retries
    done = asyncio.run(drive(calls(ValueError("again"), ValueError("again later"), Completion(text="ok")), judge,
                             max_retries=2, backoff=2.0))
    assert (done.text, done.extra["attempts"], waits) == ("ok", 3, [1.0, 3.0])
    waits.clear()
    final = asyncio.run(drive(calls(ValueError("no")), judge, max_retries=5, backoff=1.0))
    assert (final.error, final.extra, waits) == ("no", {"attempts": 1}, [])
    out = asyncio.run(drive(calls(*[ValueError("again")] * 3), judge, max_retries=2, backoff=1.0))
    assert out.error == "again (gave up after 3 tries)" and out.extra == {"attempts": 3} and waits == [0.5, 1.0]
    with pytest.raises(BackendError):
        asyncio.run(drive(calls(BackendError("down")), judge, max_retries=3, backoff=1.0))


def test_secrets_and_url_credentials_are_masked():
    register_secret("short")  # too short to mask: it would hide ordinary words
    register_secret("sk-exact-units-123456")
    register_secret("sk-exact-units-123456-longer")
    register_secret(None)
    text = ("key sk-exact-units-123456-longer and sk-exact-units-123456 at https://me:pw@host/v1?api_key=abc&x=1 "
            "short https://h/p?token=t0k#frag")
    assert scrub(text) == "key *** and *** at https://***@host/v1?api_key=***&x=1 short https://h/p?token=***#frag"
    assert url_has_credentials("http://u:p@h/v1") and url_has_credentials("http://h/v1?key=1")
    assert not url_has_credentials("http://h/v1?model=m") and not url_has_credentials("http://h/@x")


def test_unknown_names_suggest_the_closest_choice():
    err = UnknownNameError("backend", "opnai", ["openai", "vllm"])
    assert str(err) == "unknown backend 'opnai' (did you mean 'openai'?); valid choices: openai, vllm"
    assert str(UnknownNameError("task", "x", [])) == "unknown task 'x'; valid choices: none registered"


def test_label_rules_at_their_edges():
    rule = get_label_rule("recommendation>=3.5")
    assert rule.name == "recommendation>=3.5" and rule is not None
    at = Paper("1", "v", "T", "A", [], recommendations=[3, 4])
    below = Paper("2", "v", "T", "A", [], recommendations=[3, 3.9])
    assert (rule.label(at), rule.label(below), rule.label(Paper("3", "v", "T", "A", []))) == (True, False, None)
    assert recommendation_at_least(4).name == "recommendation>=4" and get_label_rule("decision") is DECISION
    assert get_label_rule("none").required is False and get_label_rule("decision").required is True
    with pytest.raises(UnknownNameError, match="recommendation>=X"):
        get_label_rule("recommendation>=high")


def stored(key, **fields):
    """A sample line as the run loop writes it (the fields the reader checks)."""
    return {"id": key, "venue": "v", "decision": "ACCEPT", "gold": {}, "p_accept": None, "error": None,
            "completion": "x", "truncation": {}, **fields}


def test_parse_samples_cuts_only_a_torn_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    a, b = json.dumps(stored("a")).encode(), json.dumps(stored("b")).encode()
    path.write_bytes(a + b"\n\n" + b + b"\n" + b[:9])
    samples, torn = parse_samples(path)
    assert samples == [stored("a"), stored("b")] and torn == len(a + b"\n\n" + b + b"\n")
    path.write_bytes(a + b"\nnot json\n" + b + b"\n")
    with pytest.raises(ConfigError, match=r"samples.jsonl:2: not valid JSON"):
        parse_samples(path)
    assert parse_samples(tmp_path / "none.jsonl") == ([], None)


def test_run_dir_appends_dedupes_on_read_and_refuses_other_settings(tmp_path):
    first, other, second = stored("a", completion="1"), stored("b"), stored("a", completion="2")
    with RunDir(tmp_path / "run") as run_dir:
        run_dir.claim({"run_identity": "x", "task": "t"})
        for sample in (first, other, second):
            run_dir.append(sample)
        (tmp_path / "run" / "samples.jsonl").open("a").write('{"id": "c"')
        assert run_dir.read_samples() == {"a": second, "b": other}
        run_dir.write_metrics({"m": 1})
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 3  # the torn line is cut off
    config, samples = read_run(tmp_path / "run")
    assert config == {"run_identity": "x", "task": "t"} and samples == [second, other]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"m": 1}
    with RunDir(tmp_path / "run") as run_dir:
        run_dir.claim({"run_identity": "x", "task": "t", "more": 1})  # same identity: fine, rewritten
        with pytest.raises(ConfigError, match="holds a run with different settings"):
            run_dir.claim({"run_identity": "y"})
        with pytest.raises(ConfigError, match="another peerbench run is writing"):
            RunDir(tmp_path / "run").__enter__()
    with pytest.raises(ConfigError, match="not a peerbench run directory"):
        read_run(tmp_path)


def test_response_cache_keys_models_and_pruning(tmp_path):
    cache = ResponseCache(tmp_path / "c" / "responses.sqlite")
    cache.put("k1", {"text": "a"}, "m1")
    cache.put("k2", {"text": "b"}, "m1")
    cache.put("k3", {"text": "c"}, "m2")
    cache.put("k1", {"text": "a2"}, "m1")
    assert cache.get("k1") == {"text": "a2"} and cache.get("nope") is None
    assert [(m, n) for m, n, _, _ in cache.summary()] == [("m1", 2), ("m2", 1)]
    assert cache.delete(model="m2") == 1 and cache.get("k3") is None
    assert cache.delete(older_than=0.0) == 0 and cache.delete() == 2
    cache.close()
