"""vertex and gemini backends: the real google-genai client against tests/vertex_server.py."""

import json
import time
from collections import Counter

import pytest
from conftest import cli_env, run_cli
from vertex_server import RETRY_INFO_DELAY, GeminiServer, review_for, thinking_of

import peerbench
from peerbench.errors import BackendError, ConfigError
from peerbench.pipeline.plan import plan_run
from peerbench.reference import card

TOKEN = "ya29.test-token-never-stored"
API_KEY = "AIza-test-key-never-stored"
GEMINI_3 = "gemini-3.1-pro-preview"


def unique_titles(peerread_root):
    plan = plan_run("peerread95", "baseline", data_dir=peerread_root)
    titles = Counter(p.title for p in plan.dataset.load(plan.dataset_args, progress=False))
    return sorted(t for t, n in titles.items() if n == 1)


def vertex_options(server, **extra):
    return {"base_url": server.base_url, "project": "proj", "location": "us-central1", "access_token_env": "VTOKEN",
            "retry_backoff": 0.01, **extra}


def read_samples(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def assert_nothing_holds(secret, *folders):
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_vertex_faults_usage_and_settings(peerread_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN", TOKEN)
    titles = unique_titles(peerread_root)
    faults = {titles[0]: "429", titles[1]: "503", titles[2]: "slow", titles[6]: "429-retryinfo"}
    outcome = {titles[3]: "safety", titles[4]: "blocked", titles[5]: "empty", titles[7]: "recitation",
               titles[8]: "503", titles[9]: "too-long"}

    def script(title, attempt):
        return outcome.get(title) or (faults.get(title) if attempt == 1 else None)

    with GeminiServer(token=TOKEN, script=script, cached=10) as server:
        started = time.monotonic()
        result = peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=vertex_options(server, thinking_budget=1024, timeout=2.0,
                                                              price_input_per_m=2.0, price_cached_input_per_m=0.5,
                                                              price_output_per_m=12.0),
                               generation={"temperature": 0.3}, resamples=20)
        assert time.monotonic() - started < 60
        body = server.bodies[0]
        arrivals = server.arrivals
    assert body["systemInstruction"]["parts"][0]["text"] == card()["system"]  # the reference prompt
    assert [c["role"] for c in body["contents"]] == ["user"] and "Title: " in body["contents"][0]["parts"][0]["text"]
    config = body["generationConfig"]
    # the cap covers thinking and the review: the task's 1400 plus the 1024-token budget
    assert (config["temperature"], config["topP"], config["maxOutputTokens"]) == (0.3, 0.9, 1400 + 1024)
    assert thinking_of(config) == {"thinkingBudget": 1024}

    samples = read_samples(tmp_path / "run")
    assert len(samples) == 95 and len({s["id"] for s in samples}) == 95
    by_title = {s["title"]: s for s in samples}
    for title in faults:
        assert by_title[title]["error"] is None and by_title[title]["extra"]["attempts"] == 2, title
    assert arrivals[titles[0]][1] - arrivals[titles[0]][0] >= 0.2  # Retry-After honoured
    # Gemini's own 429 carries no Retry-After: the body's RetryInfo.retryDelay is the wait
    assert arrivals[titles[6]][1] - arrivals[titles[6]][0] >= float(RETRY_INFO_DELAY.rstrip("s"))
    assert by_title[titles[3]]["error"] == "empty candidate (finish reason: SAFETY)"
    assert by_title[titles[3]]["finish_reason"] == "SAFETY"
    assert by_title[titles[4]]["error"] == "no candidate returned (block reason: SAFETY)"
    assert by_title[titles[5]]["error"] == "no candidate returned (block reason: no candidates)"
    recited = by_title[titles[7]]
    assert recited["error"] == "review stopped before its end (finish reason: RECITATION)"
    assert recited["decision"] == "FAILED" and recited["completion"] == " ".join(review_for(titles[7]).split(" ")[:4])
    # the server echoes the bearer token in its error bodies: the stored error masks it
    assert by_title[titles[8]]["error"] == ("HTTP 503 UNAVAILABLE: The service is currently unavailable. (request "
                                            "credential: Bearer ***) (gave up after 7 tries)")
    assert by_title[titles[9]]["error"] == ("HTTP 400 INVALID_ARGUMENT: The input token count (1200000) exceeds the "
                                            "maximum number of tokens allowed (1048576). (request credential: Bearer ***)")
    assert by_title[titles[9]]["extra"]["attempts"] == 1  # a 400 about one paper fails that paper, the run goes on
    ok = [s for s in samples if not s["error"]]
    assert len(ok) == 89 and all(s["completion"] == review_for(s["title"]) for s in ok)  # thoughts left out
    assert all(s["extra"]["reasoning"] == "Thinking about it..." for s in ok)  # and kept apart
    assert all(s["extra"]["thinking_tokens"] == 40 and s["extra"]["cached_tokens"] == 10 for s in ok)
    metrics = result.metrics
    assert metrics["n_failed"] == 6 and metrics["tokens"]["thinking"] == 40 * 90  # 89 reviews + the recitation
    expected = sum((s["prompt_tokens"] - 10) * 2.0 + 10 * 0.5
                   + ((s["completion_tokens"] or 0) + (s["extra"]["thinking_tokens"] or 0)) * 12.0
                   for s in samples if s["prompt_tokens"] is not None) / 1e6  # every reply, failed ones too
    assert metrics["cost_usd"] == pytest.approx(expected, rel=1e-6)
    assert_nothing_holds(TOKEN, tmp_path / "run")


def test_replies_cut_at_the_cap_are_failures_with_the_reason_and_never_cached(peerread_root, tmp_path, monkeypatch):
    """max_tokens 18 and a 40-token budget: the cap sent is 58, the model thinks 40 and an 18-token
    review fits (under a cap of 18 alone none would). A review that runs longer comes back cut
    (MAX_TOKENS with part of it); a model that thinks past its budget leaves no text at all. Both
    are failed papers, never cached answers."""
    monkeypatch.setenv("VTOKEN", TOKEN)
    titles = unique_titles(peerread_root)
    faults = {titles[0]: "overthink", titles[1]: "long", titles[2]: "long"}
    assert {len(review_for(t).split(" ")) for t in titles} == {18}
    with GeminiServer(token=TOKEN, script=lambda title, attempt: faults.get(title)) as server:
        run = {"data_dir": peerread_root, "backend_options": vertex_options(server, thinking_budget=40),
               "generation": {"max_tokens": 18}, "resamples": 10}
        peerbench.run("peerread95", "vertex", "gemini-test", out=tmp_path / "a", **run)
        assert {b["generationConfig"]["maxOutputTokens"] for b in server.bodies} == {58}
        first = Counter(server.attempts)
        peerbench.run("peerread95", "vertex", "gemini-test", out=tmp_path / "b", **run)
        again = Counter(server.attempts) - first
    samples = {s["title"]: s for s in read_samples(tmp_path / "a")}
    cut = ("cut off at the output cap, max_output_tokens 58 (finish reason MAX_TOKENS): {}; thinking counts "
           "against the cap: raise --max-tokens, or lower --thinking-budget or -o thinking_allowance")
    overthought = samples[titles[0]]
    assert overthought["error"] == cut.format("no review text (thinking took the whole cap)")
    assert overthought["completion"] == "" and overthought["extra"]["thinking_tokens"] == 58
    for title in titles[1:3]:
        assert samples[title]["error"] == cut.format("part of a review")
        assert samples[title]["completion"] == " ".join((review_for(title).split(" ") * 3)[:18])
    for title in titles[:3]:
        assert samples[title]["decision"] == "FAILED" and samples[title]["finish_reason"] == "MAX_TOKENS"
    ok = [s for s in samples.values() if s["error"] is None]
    assert len(ok) == 92 and all(s["completion"] == review_for(s["title"]) for s in ok)
    # a new run directory with the same settings: the cache serves the reviews, the cut ones are asked again
    assert again == Counter(titles[:3])


def test_a_refused_setting_or_key_ends_the_run_with_one_line(peerread_root, tmp_path, isolated_home):
    """A 400 about the request's settings (here a cap above the model's output limit) would come
    back for every paper: the run ends at the first one, and no message shows the key the server echoed."""
    env = cli_env(isolated_home, GEMINI_API_KEY=API_KEY)
    with GeminiServer(api_key=API_KEY, max_output_limit=2000) as server:
        args = ["run", "--backend", "gemini", "--model", "gemini-test", "--base-url", server.base_url,
                "--data-dir", str(peerread_root), "-q", "-o", "retry_backoff=0.01"]
        done = run_cli([*args, "--thinking-budget", "1024", "--out", str(tmp_path / "run")], env)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert ("gemini: the API refused the request's settings (HTTP 400 INVALID_ARGUMENT: Unable to submit request "
                "because it has a maxOutputTokens value of 2424 but the supported range is from 1 (inclusive) to "
                "2000 (exclusive). (request credential: ***)); no paper can succeed with them") in done.stderr
        assert sum(server.paths.values()) <= 8  # at most one wave of --concurrency, not 95 papers
        wrong = run_cli([*args, "--out", str(tmp_path / "wrong")], cli_env(isolated_home, GEMINI_API_KEY="AIza-wrong-key-echoed"))
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert "gemini: the request was refused (HTTP 400 INVALID_ARGUMENT: API key not valid" in wrong.stderr
    assert "check the API key in $GEMINI_API_KEY" in wrong.stderr
    assert API_KEY not in done.stderr + done.stdout and "AIza-wrong-key-echoed" not in wrong.stderr + wrong.stdout
    assert_nothing_holds(API_KEY, tmp_path, isolated_home)


def test_gemini_developer_api_key_and_refusals(peerread_root, tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    # set for Vertex in the same shell: `gemini` must still go to the Developer API with its key
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    with GeminiServer(api_key=API_KEY) as server:
        result = peerbench.run("peerread95", "gemini", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options={"base_url": server.base_url}, resamples=10, limit=5)
        assert [s["error"] for s in result.samples] == [None] * 5
        assert [p.rsplit("/", 2)[-2:] for p in server.paths] == [["models", "gemini-test:generateContent"]]
        assert all(p.startswith("/v1/models/") for p in server.paths)  # the Developer API's route, not Vertex's
        env = cli_env(isolated_home, GEMINI_API_KEY=API_KEY)
        wrong_model = run_cli(["run", "--backend", "gemini", "--model", "gemini-nope", "--base-url", server.base_url,
                               "--data-dir", str(peerread_root), "--limit", "3", "-q"], env)
        assert wrong_model.returncode == 2 and len(wrong_model.stderr.strip().splitlines()) == 1
        assert "model 'gemini-nope' was not found" in wrong_model.stderr and API_KEY not in wrong_model.stderr
        assert_nothing_holds(API_KEY, tmp_path / "run", isolated_home)
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set GEMINI_API_KEY or GOOGLE_API_KEY to a Gemini API key"):
        peerbench.run("peerread95", "gemini", "gemini-test", data_dir=peerread_root, out=tmp_path / "x", limit=2)


def test_thinking_level_is_sent_and_excludes_a_budget(peerread_root, tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv("VTOKEN", TOKEN)
    with GeminiServer(token=TOKEN) as server:
        result = peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=vertex_options(server, thinking_level="high"), resamples=10, limit=2)
        config = server.bodies[0]["generationConfig"]
    assert all(s["error"] is None for s in result.samples)
    # no fixed budget: the cap keeps the task's 1400 for the review plus the thinking allowance (8192)
    assert thinking_of(config) == {"thinkingLevel": "HIGH"} and config["maxOutputTokens"] == 1400 + 8192
    with pytest.raises(ConfigError, match=r"^--thinking-level: give --thinking-level or --thinking-budget, not both"):
        peerbench.get_backend("vertex", "gemini-test", project="p", thinking_level="low", thinking_budget=512)
    with pytest.raises(ConfigError, match=r"^--thinking-level: Input should be 'minimal', 'low', 'medium', 'high'"):
        peerbench.get_backend("gemini", "gemini-test", thinking_level="max")
    with pytest.raises(ConfigError, match=rf"^--thinking-budget 0: {GEMINI_3} cannot turn thinking off"):
        peerbench.get_backend("vertex", GEMINI_3, project="p", thinking_budget=0)
    assert peerbench.get_backend("gemini", "gemini-2.5-flash", thinking_budget=0).options.thinking_budget == 0
    done = run_cli(["run", "--backend", "vertex", "--project", "p", "--thinking-level", "high", "--thinking-budget",
                    "100", "--data-dir", str(peerread_root), "--limit", "2", "-q"], cli_env(isolated_home))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        ("Error: --thinking-level: give --thinking-level or --thinking-budget, not both (Gemini refuses the pair "
         "with HTTP 400)")]


def test_gemini_3_on_vertex_goes_to_the_global_endpoint(peerread_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN", TOKEN)
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    options = {"base_url": None, "project": "proj", "access_token_env": "VTOKEN", "retry_backoff": 0.01}
    with GeminiServer(token=TOKEN, model=GEMINI_3) as server:
        options["base_url"] = server.base_url
        result = peerbench.run("peerread95", "vertex", GEMINI_3, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options=options, resamples=10, limit=2)
        assert all(s["error"] is None for s in result.samples)
        assert [p.split("/")[5] for p in server.paths] == ["global"]
        with pytest.raises(BackendError, match=r"vertex: model 'gemini-3.1-pro-preview' was not found \(HTTP 404 "
                                               r"NOT_FOUND: .*; Gemini 3 models are served on the global endpoint: "
                                               r"use --location global \(not us-central1\)$"):
            peerbench.run("peerread95", "vertex", GEMINI_3, data_dir=peerread_root, out=tmp_path / "regional",
                          backend_options={**options, "location": "us-central1"}, limit=2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["options"]["location"] == "global"
    assert peerbench.get_backend("vertex", "gemini-2.5-pro", project="p").options.location == "us-central1"
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    assert peerbench.get_backend("vertex", GEMINI_3, project="p").options.location == "europe-west4"


def write_adc(folder, token_uri):
    """A service-account key as ADC (authorized_user files always refresh at Google's own endpoint)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "application_default_credentials.json").write_text(json.dumps({
        "type": "service_account", "project_id": "proj", "private_key_id": "k1", "private_key": key,
        "client_email": "teacher@proj.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}))


def test_adc_from_cloudsdk_config_and_token_refresh_failures(peerread_root, tmp_path, monkeypatch):
    """`gcloud` writes ADC under $CLOUDSDK_CONFIG when it is set; a token endpoint that drops the
    connection is a transient failure (tried again), a refused refresh ends the run in one line."""
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    options = {"project": "proj", "location": "us-central1", "retry_backoff": 0.01}
    with GeminiServer(token=TOKEN, token_script=lambda attempt: "drop" if attempt == 1 else None) as server:
        write_adc(tmp_path / "gcloud", f"{server.base_url}/token")
        result = peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                               backend_options={**options, "base_url": server.base_url}, resamples=10, limit=2)
        assert server.token_requests == 2
    assert all(s["error"] is None for s in result.samples)
    assert sorted(s["extra"]["attempts"] for s in result.samples) == [1, 2]
    assert_nothing_holds(TOKEN, tmp_path / "run")
    with GeminiServer(token=TOKEN, token_script=lambda attempt: "invalid_grant") as server:
        write_adc(tmp_path / "gcloud", f"{server.base_url}/token")
        with pytest.raises(BackendError, match=r"^vertex: Google refused to refresh the credentials \(.*invalid_grant"
                                               r".*\); log in with `gcloud auth application-default login`"):
            peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "refused",
                          backend_options={**options, "base_url": server.base_url}, limit=2, use_cache=False)


def test_vertex_without_credentials_says_how_to_log_in_and_does_not_hang(peerread_root, tmp_path, isolated_home):
    env = cli_env(isolated_home, HOME=str(tmp_path / "empty-home"))
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.pop("CLOUDSDK_CONFIG", None)
    started = time.monotonic()
    done = run_cli(["run", "--backend", "vertex", "--project", "proj", "--location", "us-central1",
                    "--data-dir", str(peerread_root), "--limit", "2", "-q"], env)
    assert time.monotonic() - started < 30
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no Google Cloud credentials found; log in with `gcloud auth application-default login`" in done.stderr


def test_vertex_refused_token_ends_the_run_with_one_line(peerread_root, tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN", "expired-token-echoed")
    refused = pytest.raises(BackendError, match=r"vertex: the request was refused \(HTTP 401 UNAUTHENTICATED")
    with GeminiServer(token=TOKEN) as server, refused as caught:
        peerbench.run("peerread95", "vertex", "gemini-test", data_dir=peerread_root, out=tmp_path / "run",
                      backend_options=vertex_options(server), limit=3)
    assert "expired-token-echoed" not in str(caught.value) and "(request credential: Bearer ***)" in str(caught.value)


def test_declared_facts_connection_key_retry_policy_and_option_flags(monkeypatch):
    """One bound per endpoint (a proxy's URL, else the API host and project), retries from the options,
    and errors that name the flag the user typed."""
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    vertex = peerbench.get_backend("vertex", "gemini-test", project="proj", location="europe-west4")
    assert vertex.connection_key() == "https://europe-west4-aiplatform.googleapis.com/projects/proj"
    assert peerbench.get_backend("vertex", GEMINI_3, project="proj").connection_key() == \
        "https://aiplatform.googleapis.com/projects/proj"
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
    with pytest.raises(ConfigError, match=r"^--backend-arg price_cached_input_per_m: a cost estimate needs"):
        peerbench.get_backend("gemini", "gemini-test", price_input_per_m=2.0, price_output_per_m=12.0)
    # no thinking to make room for: the cap is the task's max_tokens
    from peerbench.backends.gemini_config import output_cap

    assert output_cap(1400, "gemini-2.0-flash", peerbench.get_backend("gemini", "gemini-2.0-flash").options) == 1400
