"""What reaches the wire and the run directory, checked below the layers that could hide a bug:
the loopback server's received bodies (not the cache's answers), and samples.jsonl's raw lines
(not read_run's one-line-per-paper view). Each test pins counts and ids exactly (issue 26)."""

import json
from collections import Counter

import pytest
import yaml
from openai_server import OpenAIChatServer

import peerbench
from peerbench.pipeline.plan import plan_run
from peerbench.pipeline.sweep import sweep
from peerbench.prompts import CHAT_TEMPLATE_MARGIN, CHARS_PER_TOKEN, paper_body


def raw_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def papers_of(peerread_root, task="peerread95"):
    plan = plan_run(task, "baseline", data_dir=peerread_root)
    return plan.task, plan.dataset.load(plan.dataset_args, progress=False)


def run(server, peerread_root, out, **kwargs):
    options = {"base_url": server.base_url, "retry_backoff": 0.01, **kwargs.pop("backend_options", {})}
    return peerbench.run(kwargs.pop("task", "peerread95"), "openai", server.model, data_dir=peerread_root, out=out,
                         backend_options=options, resamples=kwargs.pop("resamples", 10), progress=False, **kwargs)


def chats(server):
    return server.hits["POST /v1/chat/completions"]


def test_a_rerun_requests_exactly_the_failed_papers_and_appends_only_their_lines(peerread_root, tmp_path):
    _, papers = papers_of(peerread_root)
    titles = Counter(p.title for p in papers)
    broken = sorted(t for t, n in titles.items() if n == 1)[:5]
    broken_keys = {p.key for p in papers if p.title in broken}
    with OpenAIChatServer(script=lambda title, attempt: "500" if title in broken and attempt == 1 else None) as server:
        first = run(server, peerread_root, tmp_path / "run", backend_options={"max_retries": 0})
        assert chats(server) == 95
        assert (first.metrics["complete"], first.metrics["n_failed"]) == (False, 5)
        second = run(server, peerread_root, tmp_path / "run", backend_options={"max_retries": 0})
        assert chats(server) == 95 + 5  # only the failed papers are sent again
        assert sorted(body_title(b) for b in server.bodies[95:]) == broken
        third = run(server, peerread_root, tmp_path / "run", backend_options={"max_retries": 0})
        assert chats(server) == 100
    lines = raw_lines(tmp_path / "run")
    assert len(lines) == 100  # 95 first answers + the 5 retried papers, nothing rewritten
    repeated = {key for key, n in Counter(s["id"] for s in lines).items() if n > 1}
    assert repeated == broken_keys
    assert [s["id"] for s in lines[95:]] and {s["id"] for s in lines[95:]} == broken_keys
    assert all(s["error"] is None and not s["cached"] for s in lines[95:])
    assert (second.metrics["complete"], second.metrics["n_answered"]) == (True, 95)
    assert third.metrics["n_answered"] == 95 and len(third.samples) == 95


def body_title(body):
    user = body["messages"][1]["content"]
    return next(line.removeprefix("Title: ") for line in user.splitlines() if line.startswith("Title: "))


def test_a_killed_run_resumes_with_each_missing_paper_requested_once(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        run(server, peerread_root, tmp_path / "run", use_cache=False)
        path = tmp_path / "run" / "samples.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        kept_ids = [json.loads(line)["id"] for line in lines[:60]]
        path.write_text("".join(lines[:60]) + lines[60][:25])  # killed while writing line 61
        run(server, peerread_root, tmp_path / "run", use_cache=False)
        assert chats(server) == 95 + 35
    resumed = raw_lines(tmp_path / "run")
    assert len(resumed) == 95 and len({s["id"] for s in resumed}) == 95
    assert [s["id"] for s in resumed[:60]] == kept_ids


def test_the_cache_serves_the_finished_papers_of_a_new_run_dir_and_nothing_else(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        run(server, peerread_root, tmp_path / "a", limit=4)
        again = run(server, peerread_root, tmp_path / "b", limit=6)
        assert chats(server) == 6
    lines = raw_lines(tmp_path / "b")
    assert [s["cached"] for s in sorted(lines, key=lambda s: s["id"])].count(True) == 4
    assert sum(1 for s in again.samples if s["cached"]) == 4 and again.metrics["timing"]["cached_samples"] == 4


@pytest.mark.parametrize("setting, value", [("max_tokens", 999), ("temperature", 0.7), ("top_p", 0.5), ("seed", 5)])
def test_every_generation_setting_is_part_of_the_cache_key_and_reaches_the_body(peerread_root, tmp_path, setting,
                                                                                  value):
    with OpenAIChatServer() as server:
        run(server, peerread_root, tmp_path / "base", limit=3)
        changed = run(server, peerread_root, tmp_path / "changed", limit=3, generation={setting: value})
        assert chats(server) == 6  # a miss for every paper
        assert [b[setting] for b in server.bodies[3:]] == [value] * 3
        assert setting not in ("seed",) or "seed" not in server.bodies[0]
        assert not any(s["cached"] for s in changed.samples)
        run(server, peerread_root, tmp_path / "same", limit=3, generation={setting: value})
        assert chats(server) == 6  # the same settings again: a hit for every paper


def test_a_sweeps_seeds_reach_the_request_body(peerread_root, tmp_path, isolated_home):
    with OpenAIChatServer() as server:
        spec = tmp_path / "sweep.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "s", "tasks": ["peerread-conll2016"], "seeds": [11, 12], "data_dir": str(peerread_root),
            "models": [{"name": "scripted", "backend": "openai", "model": server.model,
                        "options": {"base_url": server.base_url, "retry_backoff": 0.01}}]}))
        result = sweep(spec, out=tmp_path / "out", progress=False)
        seeds = Counter(body.get("seed") for body in server.bodies)
    n = len(papers_of(peerread_root, "peerread-conll2016")[1])
    assert seeds == {11: n, 12: n}
    assert [r["name"] for r in result["runs"]] == ["peerread-conll2016__scripted__seed11",
                                                  "peerread-conll2016__scripted__seed12"]
    for seed in (11, 12):
        config = json.loads((tmp_path / "out" / f"peerread-conll2016__scripted__seed{seed}" / "config.json").read_text())
        assert config["generation"]["seed"] == seed


def test_k_samples_per_paper_send_consecutive_seeds(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        run(server, peerread_root, tmp_path / "run", limit=2, samples=3, generation={"seed": 7})
        by_title = {}
        for body in server.bodies:
            by_title.setdefault(body_title(body), []).append(body["seed"])
    assert len(by_title) == 2 and all(sorted(seeds) == [7, 8, 9] for seeds in by_title.values())


@pytest.mark.parametrize("tokenize", [False, True])
def test_truncated_prompts_on_the_wire_keep_the_body_head_title_abstract_and_template(peerread_root, tmp_path,
                                                                                   tokenize):
    task, papers = papers_of(peerread_root)
    by_title = {p.title: p for p in papers[:6]}
    template = task.prompt_template()
    max_model_len = 2200 if tokenize else 3000  # the server counts words, fewer than 3.5-character tokens
    with OpenAIChatServer(tokenize=tokenize) as server:
        result = run(server, peerread_root, tmp_path / "run", limit=6, max_model_len=max_model_len)
        bodies = {body_title(b): b for b in server.bodies}
    assert len(bodies) == 6
    cut_papers = 0
    for sample in result.samples:
        paper = by_title[sample["title"]]
        body = paper_body(paper)
        truncation = sample["truncation"]
        kept = len(body) - truncation["cut_chars"]
        cut_papers += truncation["cut_chars"] > 0
        # the head of the body, inside the task's own template with title and abstract
        assert bodies[paper.title]["messages"] == template.messages(paper, body[:kept]), paper.key
        if not tokenize:
            frame = sum(len(m["content"]) for m in template.messages(paper, ""))
            budget = int((max_model_len - 1400 - CHAT_TEMPLATE_MARGIN) * CHARS_PER_TOKEN) - frame
            assert truncation == {"method": "chars", "char_budget": budget, "cut_chars": max(len(body) - budget, 0)}
        else:  # the longest head that fits, by the server's own count (tests/openai_server.py: words + 8)
            def count(text):
                return len("".join(m["content"] for m in template.messages(paper, text)).split()) + 8

            budget = max_model_len - 1400 - CHAT_TEMPLATE_MARGIN
            assert count(body[:kept]) == truncation["prompt_tokens"] <= budget < count(body[:kept + 1])
            assert truncation["method"] == "server-tokenize"
            assert truncation["cut_tokens"] == count(body) - truncation["prompt_tokens"]
    assert cut_papers == 6  # every fixture body is longer than this context
