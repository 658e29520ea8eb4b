"""The leak test: servers that put the key they were sent into every error body and every response
header they can, and every command that talks to a server (run, serve-check, sweep, report --html,
distill teacher; the openai and gemini backends). Afterwards stdout, stderr, the run directories,
the sweep folder, the response cache, $PEERBENCH_HOME and the HTML page are scanned byte for byte.

The key must be sent (the server checks it) and must appear nowhere."""

import json

import yaml
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer
from test_openai_backend import unique_titles
from vertex_server import GeminiServer

OPENAI_KEY = "sk-leak-canary-5e1d0b77c2"
GEMINI_KEY = "AIza-leak-canary-93ab01c4"


def echo_the_key(server, key_header: str) -> None:
    """Make ``server``'s handler hostile: the key it received goes into every JSON error message
    (error objects in 2xx replies included) and into a header of every response."""
    base = server.httpd.RequestHandlerClass

    class Echo(base):
        def send_body(self, status, data, content_type, headers=None):
            sent = (self.headers.get(key_header) or "").removeprefix("Bearer ")
            if content_type == "application/json" and b'"error"' in data:
                payload = json.loads(data)
                payload["error"]["message"] = f"{payload['error']['message']} (request key: {sent})"
                data = json.dumps(payload).encode()
            super().send_body(status, data, content_type, {**(headers or {}), "X-Echo-Key": sent})

    server.httpd.RequestHandlerClass = Echo


def hostile_script(titles):
    """Four papers fail on every try, each in its own way, all echoing the key."""
    faults = dict(zip(titles, ["500", "400", "429", "error200"]))
    return lambda title, attempt: faults.get(title)


def every_file(*roots):
    return [path for root in roots if root.exists() for path in root.rglob("*") if path.is_file()]


def assert_nowhere(key, outputs, files):
    for output in outputs:
        assert key not in output.stdout + output.stderr, output.args
    assert files, "nothing was written: the scan would prove nothing"
    for path in files:
        assert key.encode() not in path.read_bytes(), path


def test_an_openai_compatible_server_echoing_the_key_never_gets_it_printed_or_stored(
        peerread_root, tmp_path, isolated_home, distill_site):
    env = cli_env(isolated_home, MY_KEY=OPENAI_KEY, PYTHONPATH=str(distill_site))
    outputs = []
    with OpenAIChatServer(api_key=OPENAI_KEY, script=hostile_script(unique_titles(peerread_root))) as server:
        echo_the_key(server, "Authorization")
        flags = ["--backend", "openai", "--base-url", server.base_url, "--api-key-env", "MY_KEY",
                 "-o", "retry_backoff=0.01", "-o", "max_retries=1"]
        run = run_cli(["run", *flags, "--model", server.model, "--data-dir", str(peerread_root), "--resamples", "10",
                       "--out", str(tmp_path / "run"), "-q"], env)
        assert run.returncode == 3, run.stderr  # four papers failed: incomplete, and said so
        outputs.append(run)
        outputs.append(run_cli(["report", str(tmp_path / "run"), "--html", str(tmp_path / "page.html")], env))
        assert outputs[-1].returncode == 0 and "INCOMPLETE" in outputs[-1].stdout and (tmp_path / "page.html").is_file()
        outputs.append(run_cli(["serve-check", "--base-url", server.base_url, "--api-key-env", "MY_KEY"], env))
        assert outputs[-1].returncode == 0, outputs[-1].stderr

        spec = tmp_path / "sweep.yaml"
        spec.write_text(yaml.safe_dump({"name": "leak", "data_dir": str(peerread_root), "tasks": ["peerread95"],
                                        "models": [{"name": "hostile", "backend": "openai", "model": server.model,
                                                    "options": {"base_url": server.base_url, "api_key_env": "MY_KEY",
                                                                "retry_backoff": 0.01, "max_retries": 0}}]}))
        outputs.append(run_cli(["sweep", str(spec), "--out", str(tmp_path / "sweep"), "-q"], env))
        assert outputs[-1].returncode != 0 and (tmp_path / "sweep" / "sweep.json").is_file()

        work = tmp_path / "distill"
        sets = {"teacher_backend": "openai", "teacher_model": server.model, "data_dir": str(peerread_root),
                "pool_sources": json.dumps([{"dataset": "peerread", "venues": ["iclr_2017"], "splits": ["train"]}]),
                "teacher_options": json.dumps({"base_url": server.base_url, "api_key_env": "MY_KEY",
                                               "retry_backoff": 0.01, "max_retries": 0})}
        set_flags = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
        for stage in ("prompts", "teacher"):
            outputs.append(run_cli(["distill", stage, "-w", str(work), *set_flags], env, timeout=300))
            assert outputs[-1].returncode == 0, outputs[-1].stderr[-2000:]

        server.script = lambda title, attempt: "500"  # every paper fails: the run stops early, in one line
        outputs.append(run_cli(["run", *flags, "--model", server.model, "--data-dir", str(peerread_root),
                                "--out", str(tmp_path / "failing"), "--no-cache", "-q"], env))
        assert outputs[-1].returncode == 2 and "every request failed so far" in outputs[-1].stderr
    errors = [json.loads(line)["error"] for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sum(bool(e) for e in errors) == 4 and all("(request key: ***)" in e for e in errors if e)
    assert_nowhere(OPENAI_KEY, outputs, every_file(tmp_path, isolated_home))


def test_a_gemini_server_echoing_the_key_never_gets_it_printed_or_stored(peerread_root, tmp_path, isolated_home):
    env = cli_env(isolated_home, GEMINI_API_KEY=GEMINI_KEY)
    titles = unique_titles(peerread_root)
    faults = dict(zip(titles, ["503", "429"]))
    with GeminiServer(api_key=GEMINI_KEY, script=lambda title, attempt: faults.get(title)) as server:
        echo_the_key(server, "x-goog-api-key")
        flags = ["--backend", "gemini", "--base-url", server.base_url, "--data-dir", str(peerread_root),
                 "-o", "retry_backoff=0.01", "-o", "max_retries=1", "--resamples", "10", "-q"]
        run = run_cli(["run", *flags, "--model", "gemini-test", "--out", str(tmp_path / "run")], env)
        assert run.returncode == 3, run.stderr
        wrong = run_cli(["run", *flags, "--model", "gemini-nope", "--out", str(tmp_path / "wrong")], env)
        assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
        refused = run_cli(["run", *flags, "--model", "gemini-test", "--out", str(tmp_path / "refused")],
                          {**env, "GEMINI_API_KEY": GEMINI_KEY[::-1]})
        assert refused.returncode == 2 and "API key not valid" in refused.stderr
    assert GEMINI_KEY[::-1] not in refused.stderr + refused.stdout
    assert_nowhere(GEMINI_KEY, [run, wrong, refused], every_file(tmp_path, isolated_home))


def test_a_key_echoed_into_the_review_and_the_finish_reason_is_masked_everywhere(peerread_root, tmp_path,
                                                                                  isolated_home):
    """The reply itself carries the key (in the review text and the finish_reason) and the value of a
    secret-named extra_body option: samples.jsonl, the response cache, the HTML page, metrics.json,
    config.json, stdout and stderr hold neither, while the reviews are stored and scored."""
    extra_secret = "x-extra-canary-31b7aa90"
    env = cli_env(isolated_home, MY_KEY=OPENAI_KEY)
    with OpenAIChatServer(api_key=OPENAI_KEY) as server:
        answer = server.completion

        def echoing(title, body):
            reply = answer(title, body)
            choice = reply["choices"][0]
            choice["message"]["content"] = (f"My key is {OPENAI_KEY} and yours {body.get('x_api_key')}.\n"
                                            + choice["message"]["content"])
            choice["finish_reason"] = f"stop:{OPENAI_KEY}"
            return reply

        server.completion = echoing
        run = run_cli(["run", "--backend", "openai", "--base-url", server.base_url, "--api-key-env", "MY_KEY",
                       "--model", server.model, "--data-dir", str(peerread_root), "--limit", "6", "--resamples", "10",
                       "-o", f'extra_body={{"x_api_key": "{extra_secret}"}}', "--out", str(tmp_path / "run")], env)
        assert run.returncode == 0, run.stderr
        assert len(server.bodies) == 6 and all(b["x_api_key"] == extra_secret for b in server.bodies)
        report = run_cli(["report", str(tmp_path / "run"), "--html", str(tmp_path / "page.html")], env)
        assert report.returncode == 0, report.stderr
        again = run_cli(["run", "--backend", "openai", "--base-url", server.base_url, "--api-key-env", "MY_KEY",
                         "--model", server.model, "--data-dir", str(peerread_root), "--limit", "6", "--resamples",
                         "10", "-o", f'extra_body={{"x_api_key": "{extra_secret}"}}', "--out", str(tmp_path / "again")],
                        env)
        assert again.returncode == 0 and len(server.bodies) == 6, again.stderr  # served from the cache
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [s["completion"].splitlines()[0] for s in samples] == ["My key is *** and yours ***."] * 6
    assert {s["finish_reason"] for s in samples} == {"stop:***"} and all(s["decision"] for s in samples)
    files = every_file(tmp_path, isolated_home)
    assert any(path.suffix == ".sqlite" for path in files)
    assert_nowhere(OPENAI_KEY, [run, report, again], files)
    assert_nowhere(extra_secret, [run, report, again], files)


def test_a_report_masks_the_key_in_a_run_stored_before_masking(peerread_root, tmp_path, isolated_home):
    """A run directory written by an older peerbench holds the key in a review: `report --html`, in a
    process that never sent a request, still reads the key's variable from config.json and masks it."""
    env = cli_env(isolated_home, MY_KEY=OPENAI_KEY)
    with OpenAIChatServer(api_key=OPENAI_KEY) as server:
        run = run_cli(["run", "--backend", "openai", "--base-url", server.base_url, "--api-key-env", "MY_KEY",
                       "--model", server.model, "--data-dir", str(peerread_root), "--limit", "4", "--resamples", "10",
                       "--out", str(tmp_path / "run")], env)
        assert run.returncode == 0, run.stderr
    samples = tmp_path / "run" / "samples.jsonl"
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    for line in lines:
        line["completion"] = f"old key {OPENAI_KEY}\n" + line["completion"]
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = run_cli(["report", str(tmp_path / "run"), "--html", str(tmp_path / "page.html")], env)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "page.html").read_text()
    assert "old key ***" in page and OPENAI_KEY not in page
