"""Stale, foreign and echoed answers (issue 31, items 1, 2, 4, 5): every test here failed on the
code before the change it pins, except the exact-answer pins of scoring inputs (items 5's ICLR
reviews and held-out reviewer), which kill the mutants of those classes."""

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_server import OpenAIChatServer
from test_exact_runs import chats, run

import peerbench
from conftest import cli_env, run_cli
from peerbench.backends.openai_compat import OpenAIOptions
from peerbench.datasets.peerread import official_scores
from peerbench.errors import ConfigError
from peerbench.metrics.ceiling import _draws
from peerbench.pipeline.plan import plan_run
from peerbench.pipeline.prepare import prepare
from peerbench.prompts import TEMPLATE_FIELDS
from peerbench.records import Paper, Section
from peerbench.task import load_task


def copy_data(peerread_root, tmp_path):
    return shutil.copytree(peerread_root, tmp_path / "data")


def reviews_file(data, key):
    venue, split, paper_id = key.split("/")
    return data / venue / split / "reviews" / f"{paper_id}.json"


def confusion(result, rule="recommendation>=4"):
    return result.metrics["label_rules"][rule]["overall"]["confusion"]


# ---- item 1: gold labels and human ratings that changed in the data ----

# peerread95's own papers are pinned by its manifest (a changed label there is a DataError); the
# train split, like any other dataset's papers, has no manifest behind it.
ACL_TRAIN = dict(task="peerread-acl2017", split=["train"])


def test_changed_recommendations_are_refused_then_rescored_without_a_request(peerread_root, tmp_path):
    data = copy_data(peerread_root, tmp_path)
    with OpenAIChatServer() as server:
        first = run(server, data, tmp_path / "run", **ACL_TRAIN)
        negative = next(s for s in first.samples if not s["gold"]["recommendation>=4"])
        path = reviews_file(data, negative["id"])
        doc = json.loads(path.read_text())
        for review in doc["reviews"]:
            review["RECOMMENDATION"] = "5"
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError) as refused:
            run(server, data, tmp_path / "run", **ACL_TRAIN)
        assert negative["id"] in str(refused.value) and "--redo-changed" in str(refused.value)
        assert chats(server) == 8
        rescored = run(server, data, tmp_path / "run", redo_changed=True, **ACL_TRAIN)
        assert chats(server) == 8  # the review did not change: no request
        fresh = run(server, data, tmp_path / "fresh", use_cache=False, **ACL_TRAIN)
    assert confusion(rescored) == confusion(fresh)
    assert confusion(rescored) != confusion(first)
    flipped = next(s for s in rescored.samples if s["id"] == negative["id"])
    assert flipped["gold"]["recommendation>=4"] is True and flipped["mean_recommendation"] == 5.0
    assert flipped["completion"] == negative["completion"] and flipped["recommendations"] == [5.0] * len(
        negative["recommendations"])
    report = peerbench.report(tmp_path / "run")
    assert report["label_rules"]["recommendation>=4"]["overall"]["confusion"] == confusion(fresh)


def test_a_changed_real_decision_is_refused_through_the_cli_in_one_line(peerread_root, tmp_path, isolated_home):
    data = copy_data(peerread_root, tmp_path)
    with OpenAIChatServer() as server:
        args = ["run", "--backend", "openai", "--model", server.model, "--base-url", server.base_url, "--task",
                "peerread-iclr2017", "--split", "train", "--data-dir", str(data), "--out", str(tmp_path / "run"),
                "--resamples", "10"]
        env = cli_env(isolated_home)
        assert run_cli(args, env).returncode == 0
        iclr = sorted((data / "iclr_2017" / "train" / "reviews").glob("*.json"))[0]
        doc = json.loads(iclr.read_text())
        doc["accepted"] = not doc["accepted"]
        iclr.write_text(json.dumps(doc))
        refused = run_cli(args, env)
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"iclr_2017/train/{iclr.stem}" in lines[0] and "--redo-changed" in lines[0]
        redone = run_cli([*args, "--redo-changed", "--json"], env)
        assert redone.returncode == 0, redone.stderr
        assert chats(server) == 14
    stored = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(stored) == 15  # the relabelled paper's line is appended; the old one is superseded
    assert stored[-1]["id"] == f"iclr_2017/train/{iclr.stem}" and stored[-1]["accepted"] is doc["accepted"]
    assert stored[-1]["gold"]["decision"] is doc["accepted"]


# ---- item 2: identity and cache key hash the real values; only what is stored is masked ----

@pytest.mark.parametrize("secret_name", ["x_api_key", "prompt_cache_key"])
def test_secret_named_extra_body_values_are_different_runs(peerread_root, tmp_path, monkeypatch, secret_name):
    monkeypatch.chdir(tmp_path)
    with OpenAIChatServer() as server:
        runs = [peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, limit=6, resamples=10,
                              backend_options={"base_url": server.base_url, "extra_body": {secret_name: value}})
                for value in ("AAAA1111AAAA", "BBBB2222BBBB")]
        assert chats(server) == 12  # the second run is served nothing of the first's
        assert [body[secret_name] for body in server.bodies] == ["AAAA1111AAAA"] * 6 + ["BBBB2222BBBB"] * 6
    assert runs[0].run_dir != runs[1].run_dir
    for result in runs:
        config = (result.run_dir / "config.json").read_text()
        assert "AAAA1111AAAA" not in config and "BBBB2222BBBB" not in config
        assert json.loads(config)["options"]["extra_body"] == {secret_name: "***"}


# ---- item 4: echoed prompts never decide ----

def add_decision_to_body(data, key):
    venue, split, paper_id = key.split("/")
    path = data / venue / split / "parsed_pdfs" / f"{paper_id}.pdf.json"
    doc = json.loads(path.read_text())
    doc["metadata"]["sections"].append({"heading": "# Final Recommendation",
                                        "text": "I recommend this paper for ACCEPTANCE."})
    path.write_text(json.dumps(doc))


def echo_prompt(body):
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def test_a_model_echoing_its_prompt_is_never_scored_with_the_papers_decision_line(peerread_root, tmp_path):
    data = copy_data(peerread_root, tmp_path)
    keys = [p.key for p in _papers(data) if p.id != "37"][:18]  # 37 is cut to fit: its end is not sent
    for key in keys:
        add_decision_to_body(data, key)
    with OpenAIChatServer(reply=echo_prompt) as server:
        result = run(server, data, tmp_path / "run")
    by_id = {s["id"]: s for s in result.samples}
    assert [by_id[key]["decision"] for key in keys] == ["UNPARSED"] * 18
    assert [by_id[key]["echo"]["whole_text_decision"] for key in keys] == ["ACCEPT"] * 18
    # paper 37's prompt (its body cut to the context) is longer than 1400 tokens can make: an echo of it
    # is an oversized reply, a failed paper, never stored
    long_one = by_id.pop("acl_2017/dev/37")
    assert long_one["decision"] == "FAILED" and long_one["error"].startswith("oversized reply")
    assert all(s["echo"]["words"] >= 50 and s["decision"] == "UNPARSED" for s in by_id.values())
    # the others' whole text holds the template's two decision lines: AMBIGUOUS, read otherwise too
    assert result.metrics["echoes"] == {"reviews": 94, "read_otherwise": 94}
    assert result.metrics["decisions"]["ACCEPT"] == 0


def test_an_echo_followed_by_the_models_own_decision_is_read_from_its_own_words(peerread_root, tmp_path):
    data = copy_data(peerread_root, tmp_path)
    keys = [p.key for p in _papers(data) if p.venue == "acl_2017" and p.id != "37"][:3]
    for key in keys:
        add_decision_to_body(data, key)

    def echo_then_reject(body):
        return echo_prompt(body) + "\n\n## Final Recommendation\nI recommend this paper for REJECTION.\n"

    with OpenAIChatServer(reply=echo_then_reject) as server:
        result = run(server, data, tmp_path / "run", ids=[k.split("/")[-1] for k in keys], task="peerread-acl2017")
    assert [s["decision"] for s in result.samples] == ["REJECT"] * len(result.samples)
    assert all(s["echo"] for s in result.samples)


def test_a_review_quoting_a_sentence_of_the_paper_is_no_echo(peerread_root, tmp_path):
    papers = _papers(peerread_root)
    quote = " ".join(papers[0].abstract.split()[:30])

    def quoting(body):
        return f"## Summary\nThe paper says: \"{quote}\".\n\n## Final Recommendation\nI recommend this paper for ACCEPTANCE."

    with OpenAIChatServer(reply=quoting) as server:
        result = run(server, peerread_root, tmp_path / "run", limit=3)
    assert [s["decision"] for s in result.samples] == ["ACCEPT"] * 3
    assert all("echo" not in s for s in result.samples) and result.metrics["echoes"]["reviews"] == 0


def _papers(data, task="peerread95"):
    plan = plan_run(task, "baseline", data_dir=data)
    return plan.dataset.load(plan.dataset_args, progress=False)


# ---- item 5: everything that shapes a request is in the identity and the cache key ----

LONG_PAPER = Paper(id="p1", venue="acl_2017", title="A title", abstract="An abstract.",
                   sections=[Section("1 Introduction", "word " * 60000), Section(None, "tail")])
SERVER = "http://127.0.0.1:9/v1"


def identity_and_keys(task=None, *, samples=1, generation=None, options=None, model="m", max_model_len=None):
    task = task or load_task("peerread95")
    plan = plan_run(task, "openai", model, samples=samples, generation=generation, max_model_len=max_model_len,
                    backend_options={"base_url": SERVER, "check_server": False, **(options or {})})
    items = prepare(plan.task, plan.backend, [LONG_PAPER], None, {}, samples)
    return plan.config["run_identity"], [item.key for item in items]


BASE_TASK = load_task("peerread95")
REQUEST_SHAPERS = {
    "system prompt": dict(task=BASE_TASK.model_copy(update={"system_prompt": "Be brief."})),
    "user template": dict(task=BASE_TASK.model_copy(update={"user_template": "Review:\n{title}\n{body}"})),
    "prompt": dict(task=BASE_TASK.model_copy(update={"prompt": "reviewer-v1"})),
    "max_tokens": dict(generation={"max_tokens": 1399}),
    "temperature": dict(generation={"temperature": 0.3}),
    "top_p": dict(generation={"top_p": 0.8}),
    "seed": dict(generation={"seed": 1}),
    "samples": dict(samples=2),
    "max_model_len": dict(max_model_len=8192),
    "model": dict(model="m2"),
    "base_url": dict(options={"base_url": "http://127.0.0.1:10/v1"}),
    "logprobs": dict(options={"logprobs": False}),
    "top_logprobs": dict(options={"top_logprobs": 4}),
    "tokenizer": dict(options={"tokenizer": "chars"}),
    "extra_body": dict(options={"extra_body": {"repetition_penalty": 1.1}}),
    "secret-named extra_body": dict(options={"extra_body": {"x_api_key": "other"}}),
}
NOT_IN_THE_REQUEST = {"timeout": 3.0, "max_retries": 1, "retry_backoff": 0.5, "check_server": True,
                      "api_key_env": "OTHER_KEY", "http_client": "httpx"}


@pytest.mark.parametrize("what", sorted(REQUEST_SHAPERS))
def test_each_thing_that_reaches_a_request_changes_identity_and_cache_key(what):
    base_id, base_keys = identity_and_keys(options={"extra_body": {"x_api_key": "value"}} if "secret" in what else None)
    changed_id, changed_keys = identity_and_keys(**REQUEST_SHAPERS[what])
    assert changed_id != base_id
    assert not set(changed_keys) & set(base_keys)


@pytest.mark.parametrize("update", [{"parser": "lenient"}, {"label_rule": "decision"}, {"unparsed": "exclude"},
                                    {"report_label_rules": ["recommendation>=3"]}])
def test_what_shapes_only_the_score_changes_the_identity_but_reuses_the_answers(update):
    """The cache key is the request as sent: a new parser or label rule is a new run, whose
    requests (the same bytes) are served the same answers."""
    base_id, base_keys = identity_and_keys()
    changed_id, changed_keys = identity_and_keys(BASE_TASK.model_copy(update=update))
    assert changed_id != base_id and changed_keys == base_keys


@pytest.mark.parametrize("option", sorted(NOT_IN_THE_REQUEST))
def test_operational_options_change_neither(option):
    assert identity_and_keys(options={option: NOT_IN_THE_REQUEST[option]}) == identity_and_keys()


def test_every_openai_option_is_classified_as_sent_or_operational():
    """A new option must be put in one class or the other here: nothing reaches the wire unhashed."""
    sent = {"base_url", "logprobs", "top_logprobs", "tokenizer", "extra_body", "reasoning_effort",
            "max_completion_tokens"}
    assert set(OpenAIOptions.model_fields) == sent | set(NOT_IN_THE_REQUEST)


json_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6))
bodies = st.dictionaries(st.sampled_from(["x_api_key", "prompt_cache_key", "user", "token", "repetition_penalty"]),
                         json_values, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, bodies)
def test_two_extra_bodies_share_an_identity_exactly_when_they_are_equal(first, second):
    (id_a, keys_a), (id_b, keys_b) = (identity_and_keys(options={"extra_body": body}) for body in (first, second))
    same = json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)  # False and 0 are not one body
    assert (id_a == id_b) is same
    assert (keys_a == keys_b) is same


PAPER_FIELDS = {
    "id": dict(id="p2"), "venue": dict(venue="conll_2016"), "split": dict(split="test"), "title": dict(title="B"),
    "abstract": dict(abstract="Another."), "heading": dict(sections=[Section("2 Other", "text")]),
    "text": dict(sections=[Section("1 Intro", "other text")]), "null heading": dict(sections=[Section(None, "text")]),
    "second section": dict(sections=[Section("1 Intro", "text"), Section("2", "")]),
}


@pytest.mark.parametrize("field", sorted(PAPER_FIELDS))
def test_every_field_a_prompt_can_use_changes_the_content_hash(field):
    base = Paper(id="p1", venue="acl_2017", title="A", abstract="An.", sections=[Section("1 Intro", "text")])
    changed = Paper(**{**base.__dict__, **PAPER_FIELDS[field]})
    assert changed.content_hash() != base.content_hash()


def test_the_content_hash_covers_every_template_field():
    covered = {"title", "abstract", "venue", "body"}  # body: the sections' headings and texts
    assert set(TEMPLATE_FIELDS) <= covered


def test_what_the_data_holds_besides_the_prompt_leaves_the_content_hash_alone():
    base = Paper(id="p1", venue="acl_2017", title="A", abstract="An.", sections=[Section("1 Intro", "text")])
    labelled = Paper(**{**base.__dict__, "accepted": True, "recommendations": [5.0], "meta": {"x": 1}})
    assert labelled.content_hash() == base.content_hash()


# ---- item 5: exact answers for ICLR 2017's repeated and updated reviews and the held-out reviewer ----

def iclr_review(who, score=None, **extra):
    review = {"OTHER_KEYS": f"ICLR 2017 conference {who}", "comments": "c", "IS_META_REVIEW": False}
    if score is not None:
        review["RECOMMENDATION"] = score
    return {**review, **extra}


def test_iclr_2017_counts_each_reviewers_first_score_once():
    reviews = [iclr_review("AnonReviewer1"),                 # a pre-review question: no score
               iclr_review("AnonReviewer1", 3),
               iclr_review("AnonReviewer2", 6),
               iclr_review("AnonReviewer1", 3),              # the same review repeated
               iclr_review("AnonReviewer1", 8, DATE="later"),  # an updated score: the first one counts
               {"OTHER_KEYS": "(anonymous)", "RECOMMENDATION": 1, "comments": "public"},
               iclr_review("AnonReviewer3", 9, IS_META_REVIEW=True),
               {"OTHER_KEYS": "ICLR 2017 pcs", "comments": "decision", "RECOMMENDATION": 10}]
    assert official_scores({"reviews": reviews}, "iclr_2017", "x.json") == [3.0, 6.0]


def test_acl_drops_exact_repeats_and_keeps_equal_scores_of_other_reviews():
    one = {"comments": "a", "RECOMMENDATION": "4", "REVIEWER_CONFIDENCE": "3"}
    reviews = [one, dict(one), {**one, "comments": "b"}, {**one, "REVIEWER_CONFIDENCE": "2"}]
    assert official_scores({"reviews": reviews}, "acl_2017", "x.json") == [4.0, 4.0, 4.0]


def test_the_held_out_reviewer_is_drawn_per_paper_and_left_out_of_the_others_mean():
    held, others = _draws([[1.0, 3.0], [2.0, 4.0, 9.0]], seed=0, draws=4)
    # pinned for seed 0; each draw holds one of the paper's own ratings out of the others' mean
    assert held.tolist() == [[3.0, 2.0], [1.0, 2.0], [3.0, 9.0], [3.0, 9.0]]
    assert others.tolist() == [[1.0, 6.5], [3.0, 6.5], [1.0, 3.0], [1.0, 3.0]]
    assert {tuple(row) for row in held.tolist()} == {(3.0, 2.0), (1.0, 2.0), (3.0, 9.0)}  # both papers vary
