import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import cli_env, run_cli

from peerbench.cli import build_cli

HEAVY = ("torch", "transformers", "vllm", "openai", "google.genai", "sklearn", "matplotlib", "scipy", "numpy")


def test_import_peerbench_imports_no_heavy_library():
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import peerbench"], capture_output=True,
                            text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "peerbench" in imported
    assert not [m for m in imported if m.split(".")[0] in {h.split(".")[0] for h in HEAVY} and
                (m in HEAVY or m.split(".")[0] in ("torch", "sklearn", "matplotlib", "vllm", "numpy", "scipy"))]


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r} or name.startswith('google.genai'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
sys.argv = ['peerbench'] + {args!r}
from peerbench.cli import main
main()
"""


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["backends"], ["plugins"]])
def test_cli_works_without_heavy_libraries(args, isolated_home):
    blocked = ["torch", "transformers", "vllm", "openai", "matplotlib", "sklearn"]
    code = BLOCKER.format(blocked=blocked, args=args)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(isolated_home))
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout or "baseline" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--backend", "nope"], "valid choices: baseline, gemini, hf, openai, replay, vertex, vllm"),
    (["run", "--backend", "baseline", "--model", "always-acept"], "did you mean 'always-accept'"),
    (["run", "--backend", "baseline", "-o", "C=-1"], "--backend-arg C: Input should be greater than 0"),
    (["run", "--backend", "baseline", "-o", "colour=red"], "--backend-arg colour: Extra inputs are not permitted"),
    (["run", "--task", "peerread96"], "unknown task 'peerread96' (did you mean 'peerread95'?)"),
    (["run", "--limit", "0"], "--limit: must be a positive number"),
    (["run", "--backend", "replay", "--model", "missing.jsonl"], "--model missing.jsonl: no such file"),
    (["run", "--backend", "baseline", "--split", "validation"], "dataset field 'splits.0'"),
    (["run", "--task", "peerread95"], "--backend: required (no --model was given)"),
    (["run", "--model", "gpt-x"], "--backend: required (--model gpt-x is no preset and no backend's fixed model)"),
    (["report", "nowhere"], "nowhere: not a peerbench run directory"),
])
def test_bad_options_get_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.strip().count("\n") == 0


def test_run_then_report(peerread_root, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(build_cli(), ["run", "--backend", "baseline", "--model", "always-accept", "--data-dir",
                                         str(peerread_root), "--out", str(out), "-q", "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert "gold label: recommendation>=4 (n=95)" in result.output and "always-accept" in result.output
    assert "per venue" in result.output and "gold label: decision (n=78)" in result.output
    report = runner.invoke(build_cli(), ["report", str(out), "--json", "--resamples", "100"])
    assert report.exit_code == 0
    metrics = json.loads(report.output)
    stored = json.loads((out / "metrics.json").read_text())
    assert metrics["label_rules"] == stored["label_rules"]
    f1 = metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]["f1"]
    assert round(f1["value"], 3) == 0.914 and f1["ci"][0] < 0.914 < f1["ci"][1]


def test_limit_ids_and_split_selection(peerread_root, tmp_path):
    runner = CliRunner()
    base = ["run", "--model", "always-reject", "--data-dir", str(peerread_root), "-q", "--json", "--resamples", "10"]
    limited = json.loads(runner.invoke(build_cli(), base + ["--limit", "5", "--out", str(tmp_path / "a")]).output)
    assert limited["n_samples"] == 5
    picked = runner.invoke(build_cli(), base + ["--task", "peerread-acl2017", "--ids", "37,94", "--out",
                                                str(tmp_path / "b")])
    assert json.loads(picked.output)["n_samples"] == 2
    test_only = runner.invoke(build_cli(), base + ["--task", "peerread-iclr2017", "--split", "test", "--out",
                                                   str(tmp_path / "c")])
    assert json.loads(test_only.output)["n_samples"] == 38


def test_data_pull_and_info(peerread_server, isolated_home):
    env = cli_env(isolated_home, PEERBENCH_PEERREAD_URL=peerread_server.url + "/data", PEERBENCH_HTTP_BACKOFF="0.01",
                  PEERBENCH_PEERREAD_LISTING_URL=peerread_server.url + "/contents")
    root = isolated_home / "peerread" / "a5d0d79169b974e172186085291920a4154c433f" / "data"
    result = run_cli(["data", "pull", "peerread", "--venues", "conll_2016"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"6 files fetched; PeerRead files are in {root}\n"
    again = run_cli(["data", "pull", "peerread", "-s", "venues=conll_2016", "-s", "splits=[dev, test]"], env)
    assert again.returncode == 0 and again.stdout == f"0 files fetched; PeerRead files are in {root}\n"
    train = run_cli(["data", "pull", "peerread", "--venues", "conll_2016", "--splits", "train"], env)
    assert train.returncode == 0 and train.stdout == f"8 files fetched; PeerRead files are in {root}\n"
    info = run_cli(["data", "info"], cli_env(isolated_home, COLUMNS="200"))
    assert info.returncode == 0 and "conll_2016" in info.stdout
    assert info.stdout.strip().splitlines()[-1] == f"response cache: {isolated_home / 'responses.sqlite'} (empty)"
    rows = json.loads(run_cli(["data", "info", "--json"], env).stdout)["datasets"]
    conll = {r["what"]: r["how_many"] for r in rows if r["dataset"] == "peerread" and r["what"].startswith("conll")}
    assert conll == {"conll_2016/train": "4 review files, 4 parsed PDFs",
                     "conll_2016/dev": "1 review files, 1 parsed PDFs",
                     "conll_2016/test": "2 review files, 2 parsed PDFs"}
    assert [r for r in rows if r["dataset"] == "jsonl"] == [
        {"dataset": "jsonl", "what": None, "where": None, "how_many": None, "size_bytes": 0}]


def test_first_run_downloads_through_the_cli(peerread_server, isolated_home, tmp_path):
    env = cli_env(isolated_home, PEERBENCH_PEERREAD_URL=peerread_server.url + "/data",
                  PEERBENCH_PEERREAD_LISTING_URL=peerread_server.url + "/contents")
    result = run_cli(["run", "--backend", "baseline", "--task", "peerread-conll2016", "--out", str(tmp_path / "r"),
                      "--resamples", "10"], env)
    assert result.returncode == 0, result.stderr
    assert "PeerRead files" in result.stderr  # the progress bar
    # tfidf-lr (the default) also fetched the train split it learns from
    assert any(k.startswith("conll_2016/train/") for k in peerread_server.hits)


@pytest.mark.parametrize("backend, extra", [("hf", "hf"), ("openai", "openai")])
def test_a_missing_extra_is_one_line_naming_the_pip_install(backend, extra, peerread_root, isolated_home):
    blocked = ["torch", "transformers", "openai"]
    args = ["run", "--backend", backend, "--model", "some-model", "--data-dir", str(peerread_root), "--limit", "2",
            "-q"]
    result = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=blocked, args=args)], capture_output=True,
                            text=True, env=cli_env(isolated_home))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(f" is not installed; run: pip install 'peerbench[{extra}]'"), lines
