"""peerbench's openai backend vs lm-evaluation-harness's local-chat-completions, same server, same requests.

A local OpenAI-compatible server (tests/openai_server.py, in its own process) answers every chat
completion after a fixed latency. Both clients send the 95 peerread95 prompts (built from the
synthetic PeerRead fixtures, since the real files are not redistributed) at concurrency 16. The
ideal wall time is ceil(requests / concurrency) x latency; we print each client's wall time, the
span the server saw between the first request and the last reply, and the ratio to the ideal.

    python benchmarks/openai_throughput.py --lm-eval /path/to/venv/bin/lm_eval

lm_eval is optional (it has heavy dependencies; install it in a venv of its own); without it only
peerbench is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "openai_server.py"), "--port", str(port),
                                "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    process.stdout.readline()  # "serving ..." once it listens
    return process, f"http://127.0.0.1:{port}"


def server_stats(root: str) -> dict:
    return httpx.get(root + "/stats").json()


def run_peerbench(root: str, data_dir: Path, out: Path, concurrency: int) -> tuple[float, list[dict]]:
    import peerbench

    started = time.perf_counter()
    result = peerbench.run("peerread95", "openai", "tiny-reviewer", data_dir=data_dir, out=out, use_cache=False,
                           concurrency=concurrency, resamples=0,
                           backend_options={"base_url": root + "/v1", "logprobs": False})
    return time.perf_counter() - started, result.samples


def lm_eval_task(folder: Path, data_dir: Path) -> str:
    """A generate_until task whose documents are exactly the prompts peerbench sent."""
    from peerbench.prompts import render
    from peerbench.pipeline.plan import plan_run

    plan = plan_run("peerread95", "baseline", data_dir=data_dir)
    papers = plan.dataset.load(plan.dataset_args, progress=False)
    template = plan.task.prompt_template()
    rows = []
    for paper in papers:
        messages = render(paper, template, max_model_len=plan.task.max_model_len,
                          max_tokens=plan.task.generation.max_tokens).messages
        rows.append({"user": messages[1]["content"], "target": ""})
    system = messages[0]["content"]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gen = plan.task.generation
    (folder / "bench.yaml").write_text(f"""task: peerbench_throughput
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder / 'prompts.jsonl'}
test_split: test
output_type: generate_until
doc_to_text: "{{{{user}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: []
  max_gen_toks: {gen.max_tokens}
  temperature: {gen.temperature}
  top_p: {gen.top_p}
  do_sample: true
metric_list:
  - metric: exact_match
""")
    return system


def run_lm_eval(lm_eval: str, root: str, folder: Path, system: str, concurrency: int) -> float:
    args = [lm_eval, "--model", "local-chat-completions", "--model_args",
            f"model=tiny-reviewer,base_url={root}/v1/chat/completions,num_concurrent={concurrency},max_retries=3,"
            "tokenized_requests=False,tokenizer_backend=None", "--include_path", str(folder), "--tasks",
            "peerbench_throughput", "--apply_chat_template", "--system_instruction", system,
            "--output_path", str(folder / "out")]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "HF_DATASETS_OFFLINE": "1",
                                                                        "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"lm_eval failed (exit {done.returncode}): {done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    local = REPO / ".venv-lmeval" / "bin" / "lm_eval"
    parser.add_argument("--lm-eval", default=str(local) if local.exists() else shutil.which("lm_eval"),
                        help="path of the lm_eval command (default: .venv-lmeval's, which .ci/run builds)")
    args = parser.parse_args()
    from peerread_fixtures import write_peerread

    work = Path(tempfile.mkdtemp(prefix="peerbench-throughput-"))
    os.environ["PEERBENCH_HOME"] = str(work / "home")
    data_dir = write_peerread(work / "data")
    server, root = start_server(args.latency)
    try:
        wall, samples = run_peerbench(root, data_dir, work / "run", args.concurrency)
        stats = server_stats(root)
        n = stats["chat_requests"]
        ideal = math.ceil(n / args.concurrency) * args.latency
        print(f"requests {n}, latency {args.latency:g} s, concurrency {args.concurrency}: ideal {ideal:.2f} s")
        print(f"peerbench: wall {wall:.2f} s (incl. loading and scoring), server span {stats['span_s']:.2f} s "
              f"= {stats['span_s'] / ideal:.3f} x ideal, max in flight {stats['max_in_flight']}")
        if args.lm_eval:
            httpx.get(root + "/reset")
            folder = work / "lm-eval"
            folder.mkdir()
            system = lm_eval_task(folder, data_dir)
            lm_wall = run_lm_eval(args.lm_eval, root, folder, system, args.concurrency)
            lm_stats = server_stats(root)
            print(f"lm-eval:   wall {lm_wall:.2f} s (incl. start-up), server span {lm_stats['span_s']:.2f} s "
                  f"= {lm_stats['span_s'] / ideal:.3f} x ideal, max in flight {lm_stats['max_in_flight']}, "
                  f"requests {lm_stats['chat_requests']}")
            print(f"server span ratio lm-eval / peerbench: {lm_stats['span_s'] / stats['span_s']:.2f}")
        else:
            print("lm-eval: not measured (pass --lm-eval PATH)")
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
