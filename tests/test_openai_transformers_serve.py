"""The openai backend against a server nobody here wrote: `transformers serve` on a tiny model
built locally (tests/tiny_model.py), the whole `peerbench run --backend openai` path end to end."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import cli_env, run_cli

SERVE_START_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def transformers_server(tmp_path_factory, tiny_model_dir):
    model_dir = tiny_model_dir
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    cli = Path(sys.executable).with_name("transformers")
    with log.open("w") as handle:
        process = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                                    str(model_dir)], stdout=handle, stderr=subprocess.STDOUT,
                                   env={**cli_env(Path("/nonexistent")), "HF_HUB_OFFLINE": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVE_START_S
        while True:
            try:
                if httpx.get(base_url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base_url, str(model_dir)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_peerbench_run_against_transformers_serve(transformers_server, peerread_root, tmp_path, isolated_home):
    base_url, model = transformers_server
    env = cli_env(isolated_home, HF_HUB_OFFLINE="1")
    check = run_cli(["serve-check", "--base-url", base_url], env)
    assert check.returncode == 0, check.stderr
    assert "no /tokenize route" in check.stdout and "logprobs not returned" in check.stdout

    out = tmp_path / "run"
    result = run_cli(["run", "--backend", "openai", "--base-url", base_url, "--model", model, "--task", "peerread95",
                      "--data-dir", str(peerread_root), "--limit", "4", "--max-tokens", "12", "--max-model-len", "2048",
                      "--concurrency", "4", "--resamples", "20", "-q", "--out", str(out)], env, timeout=600)
    assert result.returncode == 0, result.stderr
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(s["error"] is None for s in samples)
    # No /tokenize here, so the model's own tokenizer (found on disk by transformers) did the counting.
    assert {s["truncation"]["method"] for s in samples} == {"transformers"}
    assert all(s["prompt_tokens"] <= 2048 - 12 for s in samples)
    assert all(s["completion_tokens"] and s["completion_tokens"] <= 12 for s in samples)
    assert all(s["p_accept"] is None for s in samples)  # transformers serve returns no logprobs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "openai" and metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 4
