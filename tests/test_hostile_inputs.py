"""What a hostile or careless user hands peerbench, refused before the first request in one line that
names the flag, field or file (exit 2), or turned into a failed paper named as such: never a
traceback, never a silently changed request. Each test here failed on the code before it."""

import json
import os

import pytest
import yaml
from click.testing import CliRunner
from conftest import cli_env, run_cli
from local_http import LocalServer, QuietHandler
from openai_server import OpenAIChatServer
from test_input_fuzz import PAPER, PARSED, REVIEWS, TASK, baseline_run, invoke, jsonl_task, peerread_folder

from peerbench.cli import build_cli

pytestmark = pytest.mark.fast

DEEP = b"[" * 200_000 + b"]" * 200_000


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def cli(args, home, **env):
    return CliRunner().invoke(build_cli(), args, env={"PEERBENCH_HOME": str(home), **env}, catch_exceptions=False)


def openai_run(server, *extra, out="run"):
    return ["run", "--backend", "openai", "--base-url", server.base_url, "--model", server.model, "-q",
            "--resamples", "0", "--out", out, "-o", "retry_backoff=0.01", "-o", "max_retries=0", *extra]


# --- 3: extra_body keys the harness sets ---------------------------------------------------------------

@pytest.mark.parametrize(("key", "flag"), [("temperature", "--temperature"), ("max_tokens", "--max-tokens"),
                                           ("messages", "the task's prompt"), ("model", "--model"),
                                           ("top_p", "--top-p"), ("n", "--samples"), ("stream", "peerbench"),
                                           ("logprobs", "-o logprobs"), ("seed", "the task's generation.seed")])
def test_an_extra_body_key_the_harness_sets_is_refused_naming_its_flag(peerread_root, tmp_path, key, flag):
    with OpenAIChatServer() as server:
        body = json.dumps({key: [{"role": "user", "content": "say hi"}] if key == "messages" else 1})
        line = one_line_error(cli(openai_run(server, "--data-dir", str(peerread_root), "-o", f"extra_body={body}"),
                                  tmp_path))
        assert server.bodies == []
    assert f"extra_body key {key!r} is set by {flag}" in line, line
    assert not (tmp_path / "run" / "config.json").exists()


def test_extra_body_keys_the_harness_does_not_set_are_sent(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--limit", "1",
                                "-o", 'extra_body={"repetition_penalty": 1.1}'), tmp_path)
        assert result.exit_code == 0, result.output
        assert server.bodies[0]["repetition_penalty"] == 1.1 and server.bodies[0]["temperature"] == 0.2


# --- 9: numbers that are no numbers, selections that select nothing, keys given twice -------------------

@pytest.mark.parametrize(("flags", "named"), [
    (["-o", 'extra_body={"penalty": .nan}'], "extra_body.penalty is not a finite number"),
    (["-o", 'extra_body={"a": {"b": [1, .inf]}}'], "extra_body.a.b[1] is not a finite number"),
    (["-o", "retry_backoff=.inf"], "--backend-arg retry_backoff: Input should be a finite number"),
    (["-o", "timeout=.nan"], "--backend-arg timeout: Input should be a finite number"),
    (["--ids", ""], "--ids"), (["--ids", ",,,"], "--ids"),
])
def test_non_finite_options_and_empty_ids_are_refused_before_any_request(peerread_root, tmp_path, flags, named):
    with OpenAIChatServer() as server:
        result = cli(openai_run(server, "--data-dir", str(peerread_root), *flags), tmp_path)
        assert server.bodies == []
    assert result.exit_code == 2 and named in result.stderr, result.output
    assert "Traceback" not in result.output


def test_temperature_inf_on_the_command_line_is_refused(peerread_root, tmp_path):
    with OpenAIChatServer() as server:
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--temperature", "inf"), tmp_path)
        assert server.bodies == []
    assert result.exit_code == 2 and "--temperature" in result.stderr and "0<=x<=2" in result.stderr


@pytest.mark.parametrize(("generation", "named"), [({"temperature": float("inf")}, "generation.temperature"),
                                                   ({"top_p": float("nan")}, "generation.top_p"),
                                                   ({"temperature": 2.5}, "generation.temperature"),
                                                   ({"seed": -1}, "generation.seed")])
def test_a_task_file_with_a_non_finite_or_out_of_bounds_setting_is_refused(tmp_path, generation, named):
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n",
                        yaml.safe_dump({**TASK, "generation": {**TASK["generation"], **generation}}).encode())
    line = one_line_error(cli(["run", "--backend", "baseline", "--model", "always-accept", "--include-path",
                               str(folder), "--task", "mine", "-q"], tmp_path))
    assert str(folder / "mine.yaml") in line and repr(named) in line, line


def test_a_task_file_giving_a_key_twice_is_refused_naming_the_line(tmp_path):
    text = yaml.safe_dump(TASK, sort_keys=False) + "label_rule: recommendation>=4\n"
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n", text.encode())
    line = one_line_error(cli(["run", "--backend", "baseline", "--model", "always-accept", "--include-path",
                               str(folder), "--task", "mine", "-q"], tmp_path))
    assert f"{folder / 'mine.yaml'}:{len(text.splitlines())}" in line and "duplicate key 'label_rule'" in line


@pytest.mark.parametrize(("text", "named"), [
    ("name: s\ntasks: [peerread95]\nseeds: [-1]\nmodels: [{backend: baseline, model: always-accept}]\n",
     "field 'seeds.0'"),
    ("name: s\ntasks: [peerread95]\nname: t\nmodels: [{backend: baseline, model: always-accept}]\n",
     "found duplicate key 'name'"),
])
def test_a_sweep_file_with_a_negative_seed_or_a_key_given_twice_is_refused(tmp_path, text, named):
    (tmp_path / "sweep.yaml").write_text(text)
    line = one_line_error(cli(["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"), "-q"],
                              tmp_path))
    assert str(tmp_path / "sweep.yaml") in line and named in line, line
    assert not (tmp_path / "out").exists()


def test_infinite_recommendations_in_a_jsonl_file_are_refused(tmp_path):
    folder = jsonl_task(tmp_path / "tasks", json.dumps({**PAPER, "recommendations": [4, 1e999]}).encode() + b"\n")
    code, stdout, _ = invoke(["validate-data", str(folder / "papers.jsonl")], tmp_path)
    assert code == 2 and "field 'recommendations'" in stdout and "finite" in stdout
    line = one_line_error(cli(["run", "--backend", "baseline", "--model", "always-accept", "--include-path",
                               str(folder), "--task", "mine", "-q", "--out", "run"], tmp_path))
    assert "recommendations" in line and not (tmp_path / "run" / "samples.jsonl").exists()


# --- 8: files and replies that used to raise past the one-line error --------------------------------------

@pytest.mark.parametrize("which", ["reviews", "parsed"])
def test_a_peerread_file_nested_200000_deep_is_one_line_naming_it(tmp_path, which):
    reviews, parsed = json.dumps(REVIEWS).encode(), json.dumps(PARSED).encode()
    data = peerread_folder(tmp_path / "data", DEEP if which == "reviews" else reviews,
                           DEEP if which == "parsed" else parsed)
    bad = data / "iclr_2017" / "train" / ("reviews/7.json" if which == "reviews" else "parsed_pdfs/7.pdf.json")
    code, stdout, _ = invoke(["validate-data", str(data)], tmp_path)
    assert code == 2 and f"{bad}: not valid JSON" in stdout and "nested too deeply" in stdout
    ran, _, stderr = baseline_run(tmp_path, tmp_path / "run", "--task", "peerread-iclr2017", "--split", "train",
                                  "--data-dir", str(data))
    assert ran == 2 and str(bad) in stderr and "nested too deeply" in stderr


def test_a_jsonl_line_nested_200000_deep_is_one_line_naming_it(tmp_path):
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n" + DEEP + b"\n")
    code, stdout, _ = invoke(["validate-data", str(folder / "papers.jsonl")], tmp_path)
    assert code == 2 and f"{folder / 'papers.jsonl'}:2: not valid JSON (nested too deeply)" in stdout
    line = one_line_error(cli(["run", "--backend", "baseline", "--model", "always-accept", "--include-path",
                               str(folder), "--task", "mine", "-q"], tmp_path))
    assert "papers.jsonl:2" in line and "nested too deeply" in line


def test_a_samples_file_nested_too_deep_is_one_line_naming_it(tmp_path):
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n")
    args = ["run", "--backend", "baseline", "--model", "always-accept", "--include-path", str(folder), "--task",
            "mine", "-q", "--resamples", "0", "--out", str(tmp_path / "run")]
    assert cli(args, tmp_path).exit_code == 0
    samples = tmp_path / "run" / "samples.jsonl"
    samples.write_bytes(DEEP + b"\n" + samples.read_bytes())
    line = one_line_error(cli(["report", str(tmp_path / "run")], tmp_path))
    assert f"{samples}:1: not valid JSON" in line


def test_a_lone_surrogate_in_a_parsed_pdf_or_a_title_is_named(tmp_path):
    parsed = json.dumps(PARSED).replace("1 Introduction", "1 Intro\\udc00duction").encode()
    data = peerread_folder(tmp_path / "data", json.dumps(REVIEWS).encode(), parsed)
    code, stdout, _ = invoke(["validate-data", str(data)], tmp_path)
    assert code == 2 and "field 'metadata.sections[0].heading' holds a lone surrogate" in stdout
    ran, _, stderr = baseline_run(tmp_path, tmp_path / "run", "--task", "peerread-iclr2017", "--split", "train",
                                  "--data-dir", str(data))
    assert ran == 2 and "7.pdf.json: field 'metadata.sections[0].heading' holds a lone surrogate" in stderr
    folder = jsonl_task(tmp_path / "tasks", json.dumps({**PAPER, "title": "T\udc00"}).encode() + b"\n")
    code, stdout, _ = invoke(["validate-data", str(folder / "papers.jsonl")], tmp_path)
    assert code == 2 and "papers.jsonl:1: field 'title' holds a lone surrogate" in stdout


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_negative_seed_is_refused_before_any_work(tmp_path, command):
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n")
    args = ["run", "--backend", "baseline", "--model", "always-accept", "--include-path", str(folder), "--task",
            "mine", "-q", "--resamples", "0", "--out", str(tmp_path / "run")]
    if command == "report":
        assert cli(args, tmp_path).exit_code == 0
        args = ["report", str(tmp_path / "run")]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli([*args, "--seed", "-5"], tmp_path)
    assert result.exit_code == 2 and "--seed" in result.stderr and "-5 is not in the range" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


class Scripted(QuietHandler):
    """Answers every request with the server's (status, body, content type), whatever was asked."""

    def do_GET(self):
        self.send_body(*self.server.reply)

    do_POST = do_GET


def scripted_server(status, body, content_type="application/json"):
    server = LocalServer(Scripted)
    server.httpd.reply = (status, body, content_type)
    return server


def chat_reply(content, **choice):
    return json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", **choice}]}
    ).encode()


def test_a_reply_whose_content_is_not_text_is_a_failed_paper_named_as_such(peerread_root, tmp_path):
    with scripted_server(200, chat_reply(12345)) as server:
        server.base_url, server.model = server.root_url + "/v1", "m"
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--limit", "2", "-o", "check_server=false"),
                     tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [json.loads(line)["error"] for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert errors == ["malformed reply: the reply's message content is a JSON int, not text (gave up after 1 try)"] * 2


@pytest.mark.parametrize("body", [b"garbage, not JSON", b"<html><body>502 Bad Gateway</body></html>",
                                  b'{"candidates": "\xff\xfe"}'])
def test_a_gemini_reply_that_is_garbage_is_a_failed_request(peerread_root, tmp_path, body):
    with scripted_server(200, body, "text/html" if body.startswith(b"<") else "application/json") as server:
        args = ["run", "--backend", "gemini", "--model", "gemini-test", "--base-url", server.root_url, "--data-dir",
                str(peerread_root), "--limit", "2", "-q", "--resamples", "0", "--out", "run",
                "-o", "retry_backoff=0.01", "-o", "max_retries=0"]
        result = cli(args, tmp_path, GEMINI_API_KEY="test-key-0123456789")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [json.loads(line)["error"] for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(errors) == 2 and all(e.startswith("malformed reply: ") for e in errors), errors


@pytest.mark.parametrize("body", [b"garbage", b"[1, 2, 3]", b'"a string"', b"<html>hi</html>"])
def test_serve_check_against_a_garbage_body_is_one_line(tmp_path, body):
    with scripted_server(200, body) as server:
        line = one_line_error(cli(["serve-check", "--base-url", server.root_url + "/v1"], tmp_path))
    assert server.root_url in line and "malformed reply" in line, line


# --- 7: --api-key-env takes a name; $OPENAI_BASE_URL is a URL like --base-url ---------------------------

@pytest.mark.parametrize("value", ["skATTACK1234567890", "sk-proj-AbCdEf0123456789", "AIzaSyA1b2C3d4",
                                   "key_00012345678", "has space"])
def test_an_api_key_env_that_looks_like_a_key_is_refused_without_echoing_it(peerread_root, tmp_path, value):
    with OpenAIChatServer() as server:
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--api-key-env", value), tmp_path)
        check = cli(["serve-check", "--base-url", server.base_url, "--api-key-env", value], tmp_path)
        assert server.bodies == []
    for refused in (result, check):
        line = one_line_error(refused)
        assert "--api-key-env" in line and value not in refused.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_KEY", "my_key_2", "GEMINI_API_KEY", "_X"])
def test_usual_variable_names_are_taken(name):
    from peerbench.backends import create_backend

    assert create_backend("openai", "m", {"api_key_env": name}).options.api_key_env == name


@pytest.mark.parametrize("url", ["http://user:pw@127.0.0.1:9/v1", "http://127.0.0.1:9/v1?api_key=abcdef123"])
def test_openai_base_url_with_credentials_is_refused_like_the_flag(peerread_root, tmp_path, url):
    result = cli(["run", "--backend", "openai", "--model", "m", "--data-dir", str(peerread_root), "-q"], tmp_path,
                 OPENAI_BASE_URL=url)
    line = one_line_error(result)
    assert line.startswith("Error: $OPENAI_BASE_URL: the URL holds credentials") and "pw" not in line
    assert "abcdef123" not in result.output


# --- 10: a full disk names the file; timeout bounds the whole request; a reply no max_tokens allows -------

def jsonl_baseline(tmp_path, *extra):
    folder = jsonl_task(tmp_path / "tasks", json.dumps(PAPER).encode() + b"\n")
    return ["run", "--backend", "baseline", "--model", "always-accept", "--include-path", str(folder), "--task",
            "mine", "-q", "--resamples", "0", "--out", str(tmp_path / "run"), *extra]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
@pytest.mark.parametrize("full", ["samples.jsonl", "metrics.json.tmp", "page.html"])
def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, full):
    run = tmp_path / "run"
    run.mkdir()
    if full == "page.html":
        assert cli(jsonl_baseline(tmp_path), tmp_path).exit_code == 0
    (tmp_path / full if full == "page.html" else run / full).symlink_to("/dev/full")
    args = ["report", str(run), "--html", str(tmp_path / "page.html")] if full == "page.html" else \
        jsonl_baseline(tmp_path)
    line = one_line_error(cli(args, tmp_path))
    shown = tmp_path / "page.html" if full == "page.html" else run / full.removesuffix(".tmp")
    assert line.startswith(f"Error: {shown}: no space left on the device"), line


class Drip(QuietHandler):
    """A chat completion whose body arrives a few bytes every 0.1 s: each read is quick, the whole is slow."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = chat_reply("## Review\nFine.\n\nI recommend this paper for ACCEPTANCE.")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for start in range(0, len(body), 4):
            if self.server.release.wait(0.1):
                return
            self.wfile.write(body[start:start + 4])
            self.wfile.flush()


def test_timeout_bounds_the_whole_request_not_each_read(peerread_root, tmp_path):
    import time

    server = LocalServer(Drip)
    server.httpd.release = server.release
    with server:
        server.base_url, server.model = server.root_url + "/v1", "m"
        started = time.monotonic()
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--limit", "1", "-o", "timeout=1",
                                "-o", "check_server=false", "-o", "tokenizer=chars"), tmp_path)
        took = time.monotonic() - started
    assert result.exit_code == 2 and took < 4, (took, result.output)  # the reply would take about 5 s
    [sample] = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert sample["error"] == "no reply within 1 s (gave up after 1 try)"


def test_a_reply_longer_than_max_tokens_allows_is_a_failure_and_is_not_stored(peerread_root, tmp_path):
    review = "ZEBRA: I recommend this paper for ACCEPTANCE. " * 15  # 690 characters: over 64 a token for 10 tokens
    with scripted_server(200, chat_reply(review)) as server:
        server.base_url, server.model = server.root_url + "/v1", "m"
        result = cli(openai_run(server, "--data-dir", str(peerread_root), "--limit", "2", "--max-tokens", "10",
                                "-o", "check_server=false", "-o", "tokenizer=chars"), tmp_path)
    assert result.exit_code == 2, result.output
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [(s["error"], s["completion"]) for s in samples] == [
        ("oversized reply: 690 characters, more than max_tokens 10 can make (64 characters a token: at most 640); "
         "the text was not stored", None)] * 2
    assert b"ZEBRA" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


# --- properties, over generated values -----------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HARNESS_KEYS = ("messages", "prompt", "model", "temperature", "top_p", "max_tokens", "n", "seed", "logprobs",
                "top_logprobs", "stream", "stream_options", "stop")  # every key the harness sets, by hand

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True)
plain = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
# keys from letters no secret-sounding name is made of: a secret-named option's value would be registered
# as a known secret for the rest of this process, and masked in other tests' output
names = st.text("wxyz_", max_size=6)
json_like = st.recursive(plain, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(names, inner, max_size=3), max_leaves=8)


@PROPERTY
@given(extra=st.dictionaries(names, json_like, max_size=3),
       key=st.sampled_from(HARNESS_KEYS), value=json_like)
def test_any_extra_body_holding_a_harness_key_is_refused_naming_it(extra, key, value):
    from peerbench.backends import create_backend
    from peerbench.errors import ConfigError

    with pytest.raises(ConfigError, match=f"extra_body key {key!r} is set by "):
        create_backend("openai", "m", {"extra_body": {**extra, key: value}})
    assert create_backend("openai", "m", {"extra_body": extra}).options.extra_body == extra


@PROPERTY
@given(body=json_like, bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]), data=st.data())
def test_a_non_finite_number_anywhere_in_extra_body_is_refused_naming_its_path(body, bad, data):
    from peerbench.backends import create_backend
    from peerbench.errors import ConfigError

    holder = {"k": body}
    parent, step = holder, "k"
    while isinstance(parent[step], (dict, list)) and parent[step] and data.draw(st.booleans()):
        parent = parent[step]
        step = data.draw(st.sampled_from(sorted(parent) if isinstance(parent, dict) else range(len(parent))))
    parent[step] = bad
    with pytest.raises(ConfigError, match="is not a finite number"):
        create_backend("openai", "m", {"extra_body": holder})


@PROPERTY
@given(record=json_like, data=st.data())
def test_a_registered_secret_is_masked_in_any_field_of_any_record(record, data):
    from peerbench.errors import mask_secrets, register_secret

    secret = "canary-" + data.draw(st.text("abcdef0123456789", min_size=8, max_size=12))
    register_secret(secret)
    planted = {"completion": f"x{secret}y", "finish_reason": secret, "nested": [record, {secret: [secret]}]}
    assert secret not in json.dumps(mask_secrets(planted))
    assert mask_secrets(planted)["finish_reason"] == "***"


@PROPERTY
@given(name=st.from_regex(r"[A-Z][A-Z_]{0,20}[0-9]{0,5}", fullmatch=True))
def test_variable_names_in_the_usual_shape_are_taken(name):
    from peerbench.backends import env_name

    assert env_name(name) == name


@PROPERTY
@given(key=st.from_regex(r"(sk|AIza|hf_)[A-Za-z]{2,6}[0-9]{6,20}", fullmatch=True))
def test_key_shaped_values_are_refused_without_being_echoed(key):
    from peerbench.backends import env_name

    with pytest.raises(ValueError) as refused:
        env_name(key)
    assert key not in str(refused.value)
