"""vertex and gemini backends: the real google-genai client against tests/vertex_server.py."""

import json
import time
from collections import Counter

import pytest
from conftest import cli_env, run_cli
from vertex_server import GeminiServer

import peerbench
from peerbench.errors import BackendError, ConfigError
from peerbench.pipeline.plan import plan_run
from peerbench.reference import card

TOKEN = "ya29.test-token-never-stored"
API_KEY = "AIza-test-key-never-stored"


def unique_titles(peerread_root):
    plan = plan_run("peerread95", "baseline", data_dir=peerread_root)
    titles = Counter(p.title for p in plan.dataset.load(plan.dataset_args, progress=False))
    return sorted(t for t, n in titles.items() if n == 1)


def vertex_options(server, **extra):
    return {"base_url": server.base_url, "project": "proj", "location": "us-central1", "access_token_env": "VTOKEN",
            "retry_backoff": 0.01, **extra}


def test_vertex_faults_usage_and_settings(peerread_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN", TOKEN)
    titles = unique_titles(peerread_root)
    faults = {titles[0]: "429", titles[1]: "503", titles[2]: "slow"}
    outcome = {titles[3]: "safety", titles[4]: "blocked", titles[5]: "empty"}

    def script(title, attempt):
        return outcome.get(title) or (faults.get(title) if attempt == 1 else None)

    with GeminiServer(token=TOKEN, script=script) as server:
        started = time.monotonic()
        result = peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=vertex_options(server, thinking_budget=1024, timeout=2.0,
                                                              price_input_per_m=2.0, price_output_per_m=12.0),
                               generation={"temperature": 0.3}, resamples=20)
        assert time.monotonic() - started < 60
        body = server.bodies[0]
        arrivals = server.arrivals
    assert body["systemInstruction"]["parts"][0]["text"] == card()["system"]  # the reference prompt
    assert [c["role"] for c in body["contents"]] == ["user"] and "Title: " in body["contents"][0]["parts"][0]["text"]
    config = body["generationConfig"]
    assert (config["temperature"], config["topP"], config["maxOutputTokens"]) == (0.3, 0.9, 1400)
    assert json.dumps(config["thinkingConfig"]).count("1024") == 1

    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 95 and len({s["id"] for s in samples}) == 95
    by_title = {s["title"]: s for s in samples}
    for title in faults:
        assert by_title[title]["error"] is None and by_title[title]["extra"]["attempts"] == 2, title
    assert arrivals[titles[0]][1] - arrivals[titles[0]][0] >= 0.2  # Retry-After honoured
    assert by_title[titles[3]]["error"] == "empty candidate (finish reason: SAFETY)"
    assert by_title[titles[3]]["finish_reason"] == "SAFETY"
    assert by_title[titles[4]]["error"] == "no candidate returned (block reason: SAFETY)"
    assert by_title[titles[5]]["error"] == "no candidate returned (block reason: no candidates)"
    ok = [s for s in samples if not s["error"]]
    assert all("Thinking about it" not in s["completion"] for s in ok)  # thought parts are not the review
    assert all(s["extra"]["thinking_tokens"] == 40 and s["completion_tokens"] == 9 for s in ok)
    metrics = result.metrics
    assert metrics["n_failed"] == 3 and metrics["tokens"]["thinking"] == 40 * 95
    expected = sum(s["prompt_tokens"] * 2.0 + (9 + 40) * 12.0 for s in samples) / 1e6
    assert metrics["cost_usd"] == pytest.approx(expected, rel=1e-6)
    for path in (tmp_path / "run").iterdir():
        assert TOKEN not in path.read_text()


def test_gemini_developer_api_key_and_refusals(peerread_root, tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with GeminiServer(api_key=API_KEY) as server:
        result = peerbench.run("peerread95", "gemini", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options={"base_url": server.base_url}, resamples=10, limit=5)
        assert all(s["error"] is None for s in result.samples)
        assert [p.rsplit("/", 2)[-2:] for p in server.paths] == [["models", "gemini-test:generateContent"]]
        env = cli_env(isolated_home, GEMINI_API_KEY=API_KEY)
        wrong_model = run_cli(["run", "--backend", "gemini", "--model", "gemini-nope", "--base-url", server.base_url,
                               "--data-dir", str(peerread_root), "--limit", "3", "-q"], env)
        assert wrong_model.returncode == 2 and len(wrong_model.stderr.strip().splitlines()) == 1
        assert "model 'gemini-nope' was not found" in wrong_model.stderr
        for path in [*(tmp_path / "run").iterdir(), *isolated_home.rglob("*")]:
            if path.is_file():
                assert API_KEY.encode() not in path.read_bytes(), path
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set GEMINI_API_KEY or GOOGLE_API_KEY to a Gemini API key"):
        peerbench.run("peerread95", "gemini", "gemini-test", data_dir=peerread_root, out=tmp_path / "x", limit=2)


def test_vertex_without_credentials_says_how_to_log_in_and_does_not_hang(peerread_root, tmp_path, isolated_home):
    env = cli_env(isolated_home, HOME=str(tmp_path / "empty-home"))
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    started = time.monotonic()
    done = run_cli(["run", "--backend", "vertex", "--project", "proj", "--location", "us-central1",
                    "--data-dir", str(peerread_root), "--limit", "2", "-q"], env)
    assert time.monotonic() - started < 30
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no Google Cloud credentials found; log in with `gcloud auth application-default login`" in done.stderr


def test_vertex_refused_token_ends_the_run_with_one_line(peerread_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN", "expired")
    with GeminiServer(token=TOKEN) as server:
        with pytest.raises(BackendError, match=r"vertex: the request was refused \(HTTP 401 UNAUTHENTICATED"):
            peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                          backend_options=vertex_options(server), limit=3)


def test_declared_facts_connection_key_retry_policy_and_option_flags():
    """One bound per endpoint (a proxy's URL, else the API host and project), retries from the options,
    and errors that name the flag the user typed."""
    vertex = peerbench.get_backend("vertex", "gemini-test", project="proj", location="europe-west4")
    assert vertex.connection_key() == "https://europe-west4-aiplatform.googleapis.com/projects/proj"
    developer = peerbench.get_backend("gemini", "gemini-test")
    assert developer.connection_key() == "https://generativelanguage.googleapis.com"
    proxied = peerbench.get_backend("gemini", "gemini-test", base_url="http://127.0.0.1:9/")
    assert proxied.connection_key() == "http://127.0.0.1:9"
    assert (developer.retry_policy().max_retries, developer.retry_policy().backoff) == (6, 2.0)
    assert vertex.in_process is False and vertex.gpus() == 0.0
    for option, flag in (("project", "--project"), ("location", "--location"), ("base_url", "--base-url")):
        with pytest.raises(ConfigError, match=rf"^{flag}: Input should be a valid string"):
            peerbench.get_backend("vertex", "gemini-test", **{"project": "p", option: 5})
    with pytest.raises(ConfigError, match=r"^--thinking-budget: Input should be greater than or equal to -1"):
        peerbench.get_backend("vertex", "gemini-test", project="p", thinking_budget=-2)
    with pytest.raises(ConfigError, match=r"^--api-key-env: Input should be a valid string"):
        peerbench.get_backend("gemini", "gemini-test", api_key_env=5)
