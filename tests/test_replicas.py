"""Data parallelism over servers (issue 36): `--base-url` repeated spreads one run over several
OpenAI-compatible replicas, each with its own in-flight bound, into one run directory; a replica
that dies mid-run is taken out and the others answer its papers."""

import json
import threading
import time

from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

CHAT = "POST /v1/chat/completions"


def answered_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_two_replicas_share_one_run_each_within_its_own_bound(peerread_root, tmp_path):
    with OpenAIChatServer(latency=0.05) as first, OpenAIChatServer(latency=0.05) as second:
        done = run_cli(["run", "--backend", "openai", "--model", first.model, "--base-url", first.base_url,
                        "--base-url", second.base_url, "--task", "peerread95", "--data-dir", str(peerread_root),
                        "--out", str(tmp_path / "run"), "--concurrency", "3", "--resamples", "10", "-q", "--json"],
                       cli_env(tmp_path / "home"))
        assert done.returncode == 0, done.stderr
        assert first.hits[CHAT] + second.hits[CHAT] == 95
        assert first.hits[CHAT] >= 20 and second.hits[CHAT] >= 20  # the least busy replica gets the next request
        assert first.max_in_flight <= 3 and second.max_in_flight <= 3  # --concurrency bounds each replica
        assert first.max_in_flight + second.max_in_flight > 3  # and not the two together
    assert json.loads(done.stdout)["n_answered"] == 95
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["options"]["base_url"] == [first.base_url, second.base_url]
    assert sorted(s["id"] for s in answered_lines(tmp_path / "run")) == sorted(
        {s["id"] for s in answered_lines(tmp_path / "run")})  # each paper once


def test_a_replica_killed_mid_run_is_taken_out_and_the_other_answers_its_papers(peerread_root, tmp_path):
    killed = threading.Event()
    with OpenAIChatServer(latency=0.03) as alive, \
            OpenAIChatServer(latency=0.03, script=lambda title, attempt: "drop" if killed.is_set() else None) as dying:
        def kill() -> None:
            deadline = time.monotonic() + 60
            while dying.hits[CHAT] < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
            killed.set()  # open connections are dropped, and nothing listens any more
            dying.httpd.shutdown()
            dying.httpd.server_close()

        killer = threading.Thread(target=kill)
        killer.start()
        done = run_cli(["run", "--backend", "openai", "--model", alive.model, "--base-url", alive.base_url,
                        "--base-url", dying.base_url, "--task", "peerread95", "--data-dir", str(peerread_root),
                        "--out", str(tmp_path / "run"), "--concurrency", "4", "--resamples", "10", "-q", "--json",
                        "-o", "retry_backoff=0.01"], cli_env(tmp_path / "home"))
        killer.join()
        answered_by_dying = dying.hits[CHAT]
    assert done.returncode == 0, done.stderr
    assert f"replica {dying.base_url} taken out" in done.stderr
    metrics = json.loads(done.stdout)
    assert (metrics["complete"], metrics["n_answered"], metrics["n_failed"]) == (True, 95, 0)
    lines = answered_lines(tmp_path / "run")
    assert len(lines) == 95 and len({s["id"] for s in lines}) == 95  # one run directory, each paper once
    assert answered_by_dying >= 15 and alive.hits[CHAT] >= 95 - answered_by_dying
