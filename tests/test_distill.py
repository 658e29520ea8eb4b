"""The bundled distillation plugin, installed with pip as a user would, end to end on CPU:
a scripted Vertex teacher on 127.0.0.1 -> filter -> TRL + PEFT LoRA on a tiny local model ->
merge -> register -> `peerbench run --backend hf --model <preset>` -> metrics.json."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import cli_env
from vertex_server import GeminiServer

TOKEN = "ya29.distill-test-token"


def distill_env(home, site):
    return cli_env(home, PYTHONPATH=str(site), VTOKEN=TOKEN, HF_HUB_OFFLINE="1")


def settings(server, peerread_root, tiny_model_dir, **extra):
    values = {"teacher_model": "gemini-test", "data_dir": str(peerread_root), "base_model": str(tiny_model_dir),
              "pool_sources": json.dumps([{"dataset": "peerread", "venues": ["iclr_2017"], "splits": ["train"]}]),
              "teacher_options": json.dumps({"base_url": server.base_url, "project": "p", "access_token_env": "VTOKEN",
                                             "retry_backoff": 0.01}),
              "max_model_len": 1000, "teacher_max_tokens": 200, "max_length": 2048, "max_steps": 4, "save_steps": 2,
              "val_size": 3, "bf16": "false", "gradient_accumulation_steps": 2, **extra}
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def distill(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "peerbench.cli", "distill", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_whole_pipeline_then_the_student_is_benchmarked(distill_site, peerread_root, tiny_model_dir, tmp_path,
                                                         isolated_home):
    env = distill_env(isolated_home, distill_site)
    work = tmp_path / "w"
    with GeminiServer(token=TOKEN) as server:
        done = distill(["run", "-w", str(work), *settings(server, peerread_root, tiny_model_dir)], env)
        assert done.returncode == 0, done.stderr[-3000:]
        teacher_requests = sum(server.paths.values())
        again = distill(["run", "-w", str(work)], env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert sum(server.paths.values()) == teacher_requests  # a rerun redoes nothing
    out = done.stdout
    assert "prompts: 14 papers (peerread 14) (asked for 434; that is all there is); none of the 95" in out
    assert "training with TRL + PEFT (no CUDA GPU)" in out
    assert "filter: done" in again.stdout and "train: done" in again.stdout and "merge: done" in again.stdout

    pool = json.loads((work / "pool.json").read_text())
    assert len(pool["keys"]) == 14 and all(k.startswith("iclr_2017/train/") for k in pool["keys"])
    assert len((work / "pool.jsonl").read_text().splitlines()) == 14
    stats = json.loads((work / "filter.json").read_text())
    assert stats["train"] + stats["val"] == stats["kept"] == 14 and stats["val"] == 3
    rows = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[0]["completion"][0]["content"].rstrip().endswith(("ACCEPTANCE.", "REJECTION."))
    config = json.loads((work / "config.json").read_text())
    assert (config["lora_r"], config["lora_alpha"], config["learning_rate"], config["seed"]) == (32, 64, 2e-5, 42)
    summary = json.loads((work / "train.json").read_text())
    assert summary["global_step"] == 4 and summary["engine"] == "trl+peft"
    assert (work / "adapter" / "adapter_config.json").is_file() and (work / "merged" / "config.json").is_file()
    assert (work / "loss.png").read_bytes().startswith(b"\x89PNG")
    adapter = json.loads((work / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 32 and adapter["lora_alpha"] == 64

    listed = subprocess.run([sys.executable, "-m", "peerbench.cli", "models"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "distilled-tiny-reviewer" in listed.stdout
    run_dir = tmp_path / "student-run"
    bench = subprocess.run([sys.executable, "-m", "peerbench.cli", "run", "--backend", "hf", "--model",
                            "distilled-tiny-reviewer", "--data-dir", str(peerread_root), "--limit", "3",
                            "--max-tokens", "8", "--max-model-len", "2048", "-q", "--resamples", "10",
                            "--out", str(run_dir)], env=env, capture_output=True, text=True, timeout=600)
    assert bench.returncode == 0, bench.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backend"] == "hf" and config["model"] == str((work / "merged").resolve())
    assert json.loads((run_dir / "metrics.json").read_text())["label_rules"]["recommendation>=4"]["overall"]["n"] == 3

    with_adapter = subprocess.run([sys.executable, "-m", "peerbench.cli", "run", "--backend", "hf", "--model",
                                   str(tiny_model_dir), "--lora", str(work / "adapter"), "--data-dir",
                                   str(peerread_root), "--limit", "2", "--max-tokens", "8", "--max-model-len", "2048",
                                   "-q", "--resamples", "10", "--out", str(tmp_path / "lora-run")], env=env,
                                  capture_output=True, text=True, timeout=600)
    assert with_adapter.returncode == 0, with_adapter.stderr[-3000:]
    assert json.loads((tmp_path / "lora-run" / "config.json").read_text())["options"]["lora"] == str(work / "adapter")

    side_by_side = distill(["eval", "-w", str(work), "--backend", "hf", "--limit", "3", "--max-tokens", "8",
                            "--max-model-len", "2048", "--resamples", "50"], env)
    assert side_by_side.returncode == 0, side_by_side.stderr[-3000:]
    assert "McNemar exact" in side_by_side.stdout and "B minus A" in side_by_side.stdout
    assert (work / "eval" / "peerread95__student__hf" / "metrics.json").is_file()


def test_killed_training_resumes_from_its_last_checkpoint(distill_site, peerread_root, tiny_model_dir, tmp_path,
                                                          isolated_home):
    env = distill_env(isolated_home, distill_site)
    work = tmp_path / "w"
    with GeminiServer(token=TOKEN) as server:
        args = settings(server, peerread_root, tiny_model_dir, max_steps=400, save_steps=3)
        for stage in ("prompts", "teacher", "filter"):
            assert distill([stage, "-w", str(work), *args], env).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "peerbench.cli", "distill", "train", "-w", str(work)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (work / "train" / "checkpoint-6").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before a checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (work / "train.json").exists()
    resumed = distill(["train", "-w", str(work), "--set", "max_steps=12"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    summary = json.loads((work / "train.json").read_text())
    assert int(summary["resumed_from"].split("-")[-1]) in (3, 6, 9) and summary["global_step"] == 12


def test_a_pool_that_overlaps_the_evaluation_task_fails_loudly(distill_site, peerread_root, tmp_path, isolated_home):
    env = distill_env(isolated_home, distill_site)
    done = distill(["prompts", "-w", str(tmp_path / "w"), "--set", f"data_dir={peerread_root}",
                    "--set", "pool_sources=[{dataset: peerread, venues: [iclr_2017], splits: [train, test]}]"], env)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "prompt pool overlaps the evaluation task 'peerread95'" in done.stderr and "change pool_sources" in done.stderr


def test_settings_are_validated(distill_site, tmp_path, isolated_home):
    done = distill(["train", "-w", str(tmp_path / "w"), "--set", "lora_r=0"], distill_env(isolated_home, distill_site))
    assert done.returncode == 2 and "distill setting lora_r: Input should be greater than or equal to 1" in done.stderr


def test_a_checkpoint_cut_short_is_not_resumed_from(distill_site, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(distill_site))
    from peerbench_distill.training import _latest_checkpoint

    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"half")
    said = []
    assert _latest_checkpoint(tmp_path, said.append) == tmp_path / "checkpoint-2"
    assert not (tmp_path / "checkpoint-4").exists() and "written only in part" in said[0]


def test_the_pool_can_draw_on_openreview(distill_site, peerread_root, tmp_path, isolated_home):
    from openreview_server import VENUE, OpenReviewServer

    with OpenReviewServer() as server:
        env = {**distill_env(isolated_home, distill_site), "PEERBENCH_OPENREVIEW_URL": server.url,
               "PEERBENCH_OPENREVIEW_MIN_INTERVAL": "0"}
        sources = json.dumps([{"dataset": "peerread", "venues": ["iclr_2017"], "splits": ["train"]},
                              {"dataset": "openreview", "venues": [VENUE]}])
        done = distill(["prompts", "-w", str(tmp_path / "w"), "--set", f"data_dir={peerread_root}",
                        "--set", f"pool_sources={sources}"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "prompts: 25 papers (peerread 14; openreview 11)" in done.stdout
    rows = [json.loads(line) for line in (tmp_path / "w" / "pool.jsonl").read_text().splitlines()]
    assert {r["venue"] for r in rows} == {"iclr_2017", "iclr_2020"}
    assert "DECISIONTEXT" not in json.dumps(rows) and "AUTHORCOMMENT" not in json.dumps(rows)


def test_teacher_cap_makes_room_for_thinking_and_cut_replies_are_asked_again(distill_site, peerread_root,
                                                                            tiny_model_dir, tmp_path, isolated_home):
    """The teacher's cap is teacher_max_tokens plus its thinking budget; a reply cut at the cap is a
    failed paper with its reason (the filter never sees it), and rerunning the stage asks for it again."""
    from vertex_server import thinking_of

    env = distill_env(isolated_home, distill_site)
    work = tmp_path / "w"
    first_title = []

    def script(title, attempt):  # the first paper asked: the model thinks past its budget, once
        first_title[:] = first_title or [title]
        return "overthink" if title == first_title[0] and attempt == 1 else None

    with GeminiServer(token=TOKEN, script=script) as server:
        args = settings(server, peerread_root, tiny_model_dir, teacher_options=json.dumps(
            {"base_url": server.base_url, "project": "p", "access_token_env": "VTOKEN", "retry_backoff": 0.01,
             "thinking_budget": 64}))
        assert distill(["prompts", "-w", str(work), *args], env).returncode == 0
        done = distill(["teacher", "-w", str(work)], env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert {b["generationConfig"]["maxOutputTokens"] for b in server.bodies} == {200 + 64}
        assert {json.dumps(thinking_of(b["generationConfig"])) for b in server.bodies} == {'{"thinkingBudget": 64}'}
        assert ("(1 failed; 1 of them: cut off at the output cap, max_output_tokens 264 (finish reason MAX_TOKENS): "
                "no review text (thinking took the whole cap);") in done.stdout
        assert f"thinking {13 * 40 + 264}" in done.stdout  # 13 replies think 40 tokens, the cut one the whole cap
        filtered = distill(["filter", "-w", str(work), "--force"], env)
        assert "filter: kept 13 of 14" in filtered.stdout, filtered.stdout + filtered.stderr
        again = distill(["teacher", "-w", str(work)], env)
        assert again.returncode == 0 and "(0 failed)" in again.stdout, again.stdout + again.stderr
        assert server.attempts[first_title[0]] == 2 and sum(server.attempts.values()) == 15
