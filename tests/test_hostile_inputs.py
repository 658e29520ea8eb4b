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


def test_infinite_recommendations_in_a_jsonl_file_are_refused(tmp_path):
    folder = jsonl_task(tmp_path / "tasks", json.dumps({**PAPER, "recommendations": [4, 1e999]}).encode() + b"\n")
    code, stdout, _ = invoke(["validate-data", str(folder / "papers.jsonl")], tmp_path)
    assert code == 2 and "field 'recommendations'" in stdout and "finite" in stdout
    line = one_line_error(cli(["run", "--backend", "baseline", "--model", "always-accept", "--include-path",
                               str(folder), "--task", "mine", "-q", "--out", "run"], tmp_path))
    assert "recommendations" in line and not (tmp_path / "run" / "samples.jsonl").exists()
