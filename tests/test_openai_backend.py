"""The openai backend against a real HTTP server on 127.0.0.1 (tests/openai_server.py), through
the real openai SDK: faults, retries, auth, wrong model, logprobs, caching and resume."""

import json
from collections import Counter

import pytest
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

import peerbench
from peerbench.errors import BackendError, ConfigError
from peerbench.pipeline.plan import plan_run

SECRET = "sk-test-do-not-leak-7f3a9c"


def unique_titles(peerread_root) -> list[str]:
    plan = plan_run("peerread95", "baseline", data_dir=peerread_root)
    titles = Counter(p.title for p in plan.dataset.load(plan.dataset_args, progress=False))
    return sorted(t for t, n in titles.items() if n == 1)


def options(server, **extra):
    return {"base_url": server.base_url, "retry_backoff": 0.01, **extra}


def samples_of(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_every_fault_is_retried_or_recorded_and_each_paper_lands_once(peerread_root, tmp_path):
    titles = unique_titles(peerread_root)
    transient = dict(zip(titles, ["429", "500", "hang", "drop", "malformed", "empty"]))
    always_400, always_500 = titles[6], titles[7]

    def script(title, attempt):
        if title == always_400:
            return "400"
        if title == always_500:
            return "500"
        return transient.get(title) if attempt == 1 else None

    with OpenAIChatServer(script=script) as server:
        result = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=options(server, timeout=3.0, max_retries=2), resamples=50)
        arrivals = server.arrivals

    samples = samples_of(tmp_path / "run")
    assert len(samples) == 95 and len({s["id"] for s in samples}) == 95
    by_title = {s["title"]: s for s in samples}
    for title in transient:
        assert by_title[title]["error"] is None and by_title[title]["extra"]["attempts"] == 2, title
    assert arrivals[titles[0]][1] - arrivals[titles[0]][0] >= 0.2  # Retry-After: 0.2 was honoured
    assert by_title[always_400]["error"].startswith("HTTP 400: This model's maximum context length is 12288")
    assert by_title[always_400]["extra"]["attempts"] == 1  # retrying cannot fix a 400
    assert by_title[always_500]["error"] == "HTTP 500: internal error (gave up after 3 tries)"
    assert result.metrics["n_failed"] == 2 and result.metrics["failures"]["count"] == 2
    assert {s["decision"] for s in samples if s["error"]} == {"FAILED"}
    # failed requests are not answers: never scored, and the run is incomplete
    assert (result.metrics["complete"], result.metrics["n_answered"], result.metrics["n_papers"]) == (False, 93, 95)
    assert result.metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 93
    ok = [s for s in samples if not s["error"]]
    assert all(0 < s["p_accept"] < 1 for s in ok)  # from the top logprobs at the decision word
    assert all(s["truncation"]["method"] == "server-tokenize" for s in samples)
    assert "auroc" in result.metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]


def test_published_settings_reach_the_server_and_rerun_sends_nothing(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        first = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "a",
                              backend_options=options(server), resamples=20, limit=10)
        body = server.bodies[0]
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (1400, 0.2, 0.9)
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        before = sum(server.hits.values())
        peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "a",
                      backend_options=options(server), resamples=20, limit=10)
        assert sum(server.hits.values()) == before  # finished run: not a single request
        chats = server.hits["POST /v1/chat/completions"]
        again = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "b",
                              backend_options=options(server), resamples=20, limit=10)
        assert server.hits["POST /v1/chat/completions"] == chats  # a new run dir is served by the cache
        assert all(s["cached"] for s in again.samples)
        assert [s["decision"] for s in again.samples] == [s["decision"] for s in first.samples]


def test_without_logprobs_p_accept_stays_empty(peerread_root, tmp_path):
    with OpenAIChatServer(logprobs=False, tokenize=False) as server:
        result = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=options(server), resamples=20, limit=12)
    assert all(s["p_accept"] is None for s in result.samples)
    assert "auroc" not in result.metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]
    assert {s["truncation"]["method"] for s in result.samples} == {"chars"}  # no /tokenize, no local tokenizer


def test_a_run_where_everything_fails_stops_early(peerread_root, tmp_path):
    with OpenAIChatServer(script=lambda title, attempt: "500") as server:
        with pytest.raises(BackendError, match="every request failed so far"):
            peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "run",
                          backend_options=options(server, max_retries=0), concurrency=2)
        assert server.hits["POST /v1/chat/completions"] < 20
    assert 8 <= len(samples_of(tmp_path / "run")) < 20  # what was tried is kept


def test_failed_requests_make_the_run_incomplete_and_a_plain_rerun_sends_exactly_those(peerread_root, tmp_path,
                                                                                       isolated_home):
    titles = unique_titles(peerread_root)
    broken = set(titles[:8])
    with OpenAIChatServer(script=lambda title, attempt: "500" if title in broken and attempt <= 2 else None) \
            as server:
        args = ["run", "--task", "peerread95", "--backend", "openai", "--model", server.model, "--base-url",
                server.base_url, "-o", "retry_backoff=0.01", "-o", "max_retries=1", "--data-dir", str(peerread_root),
                "--out", str(tmp_path / "run"), "--resamples", "20", "-q"]
        env = cli_env(isolated_home, OPENAI_API_KEY="unused", COLUMNS="200")
        first = run_cli(args, env)
        assert first.returncode == 3, first.stderr
        assert "INCOMPLETE: 87/95 answered (8 failed, 0 not yet requested)" in first.stdout
        assert first.stderr.strip().splitlines()[-1].startswith("INCOMPLETE: 87/95 answered")
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert (metrics["complete"], metrics["n_answered"], metrics["n_failed"]) == (False, 87, 8)
        assert metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 87
        chats = server.hits["POST /v1/chat/completions"]
        assert chats == 87 + 8 * 2
        second = run_cli(args, env)  # the same command, no flag
        assert second.returncode == 0, second.stderr
        assert server.hits["POST /v1/chat/completions"] - chats == 8
        assert "95/95 answered" in second.stdout
    assert len(samples_of(tmp_path / "run")) == 95 + 8  # appended; the later line of a paper wins
    rescored = peerbench.report(tmp_path / "run", resamples=20)
    assert (rescored["n_samples"], rescored["n_failed"], rescored["complete"]) == (95, 0, True)
    assert rescored["label_rules"]["recommendation>=4"]["overall"]["n"] == 95


def test_cli_errors_are_one_line_and_the_key_never_lands_anywhere(peerread_root, tmp_path, isolated_home):
    env = cli_env(isolated_home)
    with OpenAIChatServer(api_key=SECRET) as server:
        base = ["run", "--backend", "openai", "--base-url", server.base_url, "--data-dir", str(peerread_root),
                "--limit", "5", "-q", "--resamples", "10"]
        refused = run_cli([*base, "--model", server.model], env)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert "refused the request (HTTP 401" in refused.stderr and "$OPENAI_API_KEY, which is not set" in refused.stderr

        wrong_key = SECRET[::-1]  # the server echoes a refused key in its 401 body
        echoed = run_cli([*base, "--model", server.model, "--api-key-env", "MY_KEY"], {**env, "MY_KEY": wrong_key})
        assert echoed.returncode == 2 and "refused the request (HTTP 401" in echoed.stderr
        assert wrong_key not in echoed.stderr + echoed.stdout and "Incorrect API key provided: ***" in echoed.stderr
        checked = run_cli(["serve-check", "--base-url", server.base_url, "--api-key-env", "MY_KEY"],
                          {**env, "MY_KEY": wrong_key})
        assert checked.returncode == 2 and wrong_key not in checked.stderr + checked.stdout

        wrong = run_cli([*base, "--model", "tiny-reviwer", "--api-key-env", "MY_KEY"], {**env, "MY_KEY": SECRET})
        assert wrong.returncode == 2
        assert wrong.stderr.strip() == (f"Error: --model 'tiny-reviwer' is not served by {server.base_url}; "
                                        f"it serves: tiny-reviewer")

        ok = run_cli([*base, "--model", server.model, "--api-key-env", "MY_KEY", "--out", str(tmp_path / "run")],
                     {**env, "MY_KEY": SECRET})
        assert ok.returncode == 0, ok.stderr
        check = run_cli(["serve-check", "--base-url", server.base_url, "--api-key-env", "MY_KEY"],
                        {**env, "MY_KEY": SECRET})
        assert check.returncode == 0, check.stderr
        assert "logprobs returned" in check.stdout and "max_model_len 12288" in check.stdout
    written = [p for root in (tmp_path / "run", isolated_home) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "responses.sqlite" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    for output in (refused, wrong, ok, check):
        assert SECRET not in output.stdout + output.stderr


def test_serve_check_says_what_is_wrong(isolated_home):
    env = cli_env(isolated_home)
    down = run_cli(["serve-check", "--base-url", "http://127.0.0.1:9/v1"], env)
    assert down.returncode == 2 and down.stderr.startswith("Error: cannot reach http://127.0.0.1:9/v1")
    with OpenAIChatServer() as server:
        missing = run_cli(["serve-check", "--base-url", server.base_url, "--model", "other"], env)
        assert "is not served by" in missing.stderr and "it serves: tiny-reviewer" in missing.stderr
        short = run_cli(["serve-check", "--base-url", server.base_url, "--task", "peerread95"], env)
        assert short.returncode == 0, short.stderr
    with OpenAIChatServer(max_model_len=4096) as server:
        short = run_cli(["serve-check", "--base-url", server.base_url, "--task", "peerread95"], env)
        assert short.returncode == 2 and "max_model_len 4096, below the 12288 of task 'peerread95'" in short.stderr


def test_samples_k_gives_the_accept_share_as_p_accept(peerread_root, tmp_path):
    with OpenAIChatServer(sample_by_seed=True, logprobs=False) as server:
        result = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=options(server), resamples=20, limit=10, samples=5)
        assert server.hits["POST /v1/chat/completions"] == 50
        assert sorted({b["seed"] for b in server.bodies}) == [0, 1, 2, 3, 4]
        again = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "new",
                              backend_options=options(server), resamples=20, limit=10, samples=5)
        assert server.hits["POST /v1/chat/completions"] == 50  # all 50 generations came from the cache
    samples = samples_of(tmp_path / "run")
    assert len(samples) == 10 and all(s["cached"] for s in again.samples)
    mixed = 0
    for s in samples:
        decisions = s["extra"]["decisions"]
        assert len(decisions) == 5 and s["p_accept"] == decisions.count("ACCEPT") / 5
        assert s["decision"] == decisions[0]  # the first generation's, a single sample as the card scores it
        assert s["extra"]["majority"] == ("ACCEPT" if s["p_accept"] > 0.5 else "REJECT")
        mixed += 0 < s["p_accept"] < 1
    assert mixed > 0  # the seeds really gave different reviews
    assert result.config["samples_per_paper"] == 5 and "auroc" in \
        result.metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]
    # the majority vote is a column beside the first-sample scores; every generation is counted
    voted = result.metrics["label_rules"]["recommendation>=4"]["baselines"]["majority of 5 samples"]
    gold = [s["gold"]["recommendation>=4"] for s in samples]
    assert voted["accuracy"] == sum((s["extra"]["majority"] == "ACCEPT") == g for s, g in zip(samples, gold)) / 10
    generations = result.metrics["generations"]
    assert generations["total"] == 50 and generations["ACCEPT"] == sum(s["p_accept"] * 5 for s in samples)


def test_a_secret_inside_an_option_value_is_kept_out_of_every_file(peerread_root, tmp_path, isolated_home):
    with OpenAIChatServer() as server:
        done = run_cli(["run", "--backend", "openai", "--base-url", server.base_url, "--model", server.model,
                        "--data-dir", str(peerread_root), "--limit", "3", "-q", "--out", str(tmp_path / "run"),
                        "-o", 'extra_body={"api_key": "' + SECRET + '", "top_k": 5, "max_completion_tokens": 50}',
                        "-o", "tokenizer=chars"], cli_env(isolated_home))
        assert done.returncode == 0, done.stderr
        assert server.bodies[0]["top_k"] == 5 and server.bodies[0]["api_key"] == SECRET  # sent, as asked
        assert server.bodies[0]["max_completion_tokens"] == 50
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    # the secret's value is masked, never its key; what shapes the request is always recorded
    assert config["options"]["extra_body"] == {"api_key": "***", "top_k": 5, "max_completion_tokens": 50}
    assert config["options"]["api_key_env"] == "OPENAI_API_KEY" and config["options"]["tokenizer"] == "chars"
    for path in [*(tmp_path / "run").rglob("*"), *isolated_home.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in done.stdout + done.stderr


def test_extra_body_and_tokenizer_are_part_of_the_identity_and_the_cache_key(peerread_root, tmp_path,
                                                                             isolated_home):
    with OpenAIChatServer() as server:
        def run(*extra):
            args = ["run", "--task", "peerread-conll2016", "--backend", "openai", "--model", server.model,
                    "--base-url", server.base_url, "--data-dir", str(peerread_root), "-q", "--resamples", "10",
                    *extra]
            done = run_cli(args, cli_env(isolated_home, OPENAI_API_KEY="unused"))
            assert done.returncode == 0, done.stderr
            return done.stdout.strip().splitlines()[-1]  # "run directory: ..."

        first = run("-o", 'extra_body={"max_completion_tokens": 50}')
        assert server.hits["POST /v1/chat/completions"] == 3
        other = run("-o", 'extra_body={"max_completion_tokens": 60}')
        assert server.hits["POST /v1/chat/completions"] == 6 and other != first
        assert run("-o", 'extra_body={"max_completion_tokens": 50}') == first
        assert server.hits["POST /v1/chat/completions"] == 6  # the same request: nothing sent again
        assert run("-o", 'extra_body={"max_completion_tokens": 50}', "-o", "tokenizer=chars") != first


def test_a_pasted_key_in_api_key_env_is_refused_without_echoing_it(isolated_home):
    result = run_cli(["run", "--backend", "openai", "--model", "m", "--api-key-env", SECRET], cli_env(isolated_home))
    assert result.returncode == 2 and "--api-key-env" in result.stderr and SECRET not in result.stderr


def test_declared_facts_connection_key_retry_policy_and_option_flags():
    """What the harness reads from the backend: one bound per server, its retry options, and the
    flag each option has on `peerbench run` (from the options' metadata)."""
    backend = peerbench.get_backend("openai", "m", base_url="http://h:8000/v1/", max_retries=3, retry_backoff=0.5)
    other_model = peerbench.get_backend("openai", "other", base_url="http://h:8000/v1")
    assert backend.connection_key() == other_model.connection_key() == "http://h:8000/v1"
    assert (backend.retry_policy().max_retries, backend.retry_policy().backoff) == (3, 0.5)
    assert backend.in_process is False and backend.gpus() == 0.0
    with pytest.raises(ConfigError, match=r"^--base-url: Input should be a valid string \(backend 'openai' takes: "):
        peerbench.get_backend("openai", "m", base_url=8000)
    with pytest.raises(ConfigError, match=r"^--api-key-env: Input should be a valid string"):
        peerbench.get_backend("openai", "m", api_key_env=1)
    with pytest.raises(ConfigError, match=r"^--backend-arg max_retries: Input should be greater than or equal to 0"):
        peerbench.get_backend("openai", "m", max_retries=-1)


def test_a_null_content_is_retried_then_a_failure_and_never_cached(peerread_root, tmp_path):
    titles = unique_titles(peerread_root)
    flaky, broken = titles[0], titles[1]

    def script(title, attempt):
        return "null" if title == broken or (title == flaky and attempt == 1) else None

    with OpenAIChatServer(script=script) as server:
        kwargs = dict(data_dir=peerread_root, backend_options=options(server, max_retries=2), resamples=10)
        result = peerbench.run("peerread95", "openai", server.model, out=tmp_path / "a", **kwargs)
        by_title = {s["title"]: s for s in result.samples}
        assert by_title[flaky]["error"] is None and by_title[flaky]["extra"]["attempts"] == 2
        assert by_title[broken]["error"] == ("malformed reply: the reply's message content is null "
                                             "(gave up after 3 tries)")
        assert by_title[broken]["decision"] == "FAILED" and result.metrics["n_answered"] == 94
        chats = server.hits["POST /v1/chat/completions"]
        again = peerbench.run("peerread95", "openai", server.model, out=tmp_path / "b", **kwargs)
        assert server.hits["POST /v1/chat/completions"] - chats == 3  # only the null paper: it was never cached
        assert sum(s["cached"] for s in again.samples) == 94


def test_an_unusable_cache_is_one_warning_and_the_run_finishes(peerread_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with OpenAIChatServer() as server:
        done = run_cli(["run", "--task", "peerread-conll2016", "--backend", "openai", "--model", server.model,
                        "--base-url", server.base_url, "--data-dir", str(peerread_root), "-q", "--resamples", "10",
                        "--out", str(tmp_path / "run")], cli_env(blocker / "home"))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(blocker) in warnings[0] and "goes on without it" in warnings[0]
    assert len(samples_of(tmp_path / "run")) == 3


def test_credentials_in_a_base_url_are_refused_in_one_line(isolated_home):
    for args in (["run", "--backend", "openai", "--model", "m", "--base-url", "http://me:" + SECRET + "@h/v1"],
                 ["serve-check", "--base-url", "http://h/v1?api-key=" + SECRET]):
        result = run_cli(args, cli_env(isolated_home))
        assert result.returncode == 2 and SECRET not in result.stderr + result.stdout
        assert "--base-url: the URL holds credentials" in result.stderr and "--api-key-env" in result.stderr


def test_a_model_saved_again_at_the_same_path_is_requested_again_on_the_same_command(peerread_root, tmp_path,
                                                                                    isolated_home):
    model = tmp_path / "student"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "model.safetensors").write_bytes(b"\x10" * 64)
    with OpenAIChatServer(model=str(model)) as server:  # a server that serves the folder, as vllm serve does
        args = ["run", "--task", "peerread-conll2016", "--backend", "openai", "--model", str(model), "--base-url",
                server.base_url, "--data-dir", str(peerread_root), "-q", "--resamples", "10", "--json"]
        env = cli_env(isolated_home, OPENAI_API_KEY="unused")
        first = run_cli(args, env)
        assert first.returncode == 0 and server.hits["POST /v1/chat/completions"] == 3
        assert run_cli(args, env).returncode == 0 and server.hits["POST /v1/chat/completions"] == 3  # unchanged
        (model / "model.safetensors").write_bytes(b"\x11" * 64)  # retrained in place: same size, same path
        third = run_cli(args, env)
        assert third.returncode == 0 and server.hits["POST /v1/chat/completions"] == 6  # cache missed, as it must
    dirs = sorted(p.name for p in (isolated_home.parent / "peerbench-runs").iterdir())
    assert len(dirs) == 2  # the default run directory follows the weights


def test_each_failure_keeps_what_the_server_said(peerread_root, tmp_path):
    """A hang-up is not a timeout, and a 200 carrying an error object keeps the server's text."""
    titles = unique_titles(peerread_root)
    faults = dict(zip(titles, ["drop", "hang", "error200"]))
    with OpenAIChatServer(script=lambda title, attempt: faults.get(title)) as server:
        for client in ("aiohttp", "httpx"):
            peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / client,
                          backend_options=options(server, timeout=1.0, max_retries=0, http_client=client),
                          resamples=10, progress=False)
            errors = {s["title"]: s["error"] for s in samples_of(tmp_path / client) if s["error"]}
            assert errors[titles[0]].startswith("the server closed the connection before replying ("), client
            assert errors[titles[1]] == "no reply within 1 s (gave up after 1 try)", client
            assert errors[titles[2]] == ("malformed reply: the server answered 200 with an error: "
                                         "upstream provider overloaded (gave up after 1 try)"), client
            assert len(errors) == 3
