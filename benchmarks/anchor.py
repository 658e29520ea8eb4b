"""peerbench, lm-eval and inspect_ai end to end against one loopback OpenAI-compatible server.

The server (tests/openai_server.py's, run in this process on a thread, with no /tokenize route as
most servers have none) answers every chat completion after ``--latency`` seconds. Each tool is
run as a whole command (process start to exit) on the same 95 peerread95 prompts, built from the
synthetic PeerRead fixtures, with the task's sampling settings and 16 requests in flight. Per run:

- efficiency: ideal span / measured span, where the span runs from the first chat request the
  server saw to the last reply it sent, and the ideal is ceil(requests / 16) x latency;
- wall: the whole command, process start to exit;
- start: process start -> the first chat request; tail: the last reply -> process exit.

    python benchmarks/anchor.py --setup        # build .venv-lmeval and .venv-inspect if missing
    python benchmarks/anchor.py --runs 3 --write docs/performance.md

Runs are interleaved (peerbench, lm-eval, inspect_ai, then again), and the 1-minute load average
is printed with each, since other processes on the machine move every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

VENVS = {"lm-eval": (REPO / ".venv-lmeval", ["-r", str(REPO / "requirements" / "lm-eval.txt")]),
         "inspect_ai": (REPO / ".venv-inspect", ["inspect_ai==0.3.285", "openai"])}
MODEL = "tiny-reviewer"
BEGIN, END = "<!-- anchor:begin -->", "<!-- anchor:end -->"


def setup() -> None:
    """Each tool in a virtualenv of its own (their pins do not fit peerbench's)."""
    for name, (venv, spec) in VENVS.items():
        if (venv / "bin" / "python").exists():
            print(f"{name}: {venv} exists")
            continue
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *spec], check=True)
        print(f"{name}: built {venv}")


def timed_server(latency: float):
    """The tests' chat server, also noting when each reply leaves (for the span and the tail)."""
    import threading

    from openai_server import OpenAIChatServer

    class TimedServer(OpenAIChatServer):
        def __init__(self) -> None:
            super().__init__(MODEL, latency=latency, tokenize=False)
            self.replies: list[float] = []
            self.reply_lock = threading.Lock()

        def completion(self, title: str, body: dict) -> dict:
            reply = super().completion(title, body)
            with self.reply_lock:
                self.replies.append(time.monotonic())
            return reply

        def reset(self) -> None:
            with self._lock, self.reply_lock:
                self.arrivals.clear()
                self.attempts.clear()
                self.replies.clear()
                self.max_in_flight = 0

    return TimedServer()


def inspect_task(folder: Path, data_dir: Path) -> Path:
    """An inspect_ai task whose samples are exactly the prompts peerbench sends (system + user)."""
    from openai_throughput import lm_eval_task

    system = lm_eval_task(folder, data_dir)  # writes prompts.jsonl, the same rows lm-eval reads
    from peerbench.pipeline.plan import plan_run

    gen = plan_run("peerread95", "baseline", data_dir=data_dir).task.generation
    (folder / "system.txt").write_text(system)
    path = folder / "inspect_task.py"
    path.write_text(f'''import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

HERE = Path(__file__).parent


@task
def peerbench_anchor():
    system = (HERE / "system.txt").read_text()
    rows = [json.loads(line) for line in (HERE / "prompts.jsonl").read_text().splitlines()]
    samples = [Sample(input=[ChatMessageSystem(content=system), ChatMessageUser(content=row["user"])],
                      target="ACCEPTANCE") for row in rows]
    return Task(dataset=samples, solver=generate(), scorer=includes(),
                config=GenerateConfig(max_tokens={gen.max_tokens}, temperature={gen.temperature}, top_p={gen.top_p}))
''')
    return path


def commands(root: str, work: Path, data_dir: Path, concurrency: int,
             before: Path | None = None) -> dict[str, tuple[list[str], dict, Path]]:
    """Each tool's whole command line, its extra environment and the folder it runs in; with
    ``before`` (a source tree, e.g. ``git archive HEAD``), peerbench from that tree too."""
    from openai_throughput import lm_eval_task

    lm_folder = work / "lm-eval"
    lm_folder.mkdir()
    system = lm_eval_task(lm_folder, data_dir)
    in_folder = work / "inspect"
    in_folder.mkdir()
    task = inspect_task(in_folder, data_dir)
    lm_eval = VENVS["lm-eval"][0] / "bin" / "lm_eval"
    inspect = VENVS["inspect_ai"][0] / "bin" / "inspect"
    out = {
        "peerbench": ([str(REPO / ".venv" / "bin" / "peerbench"), "run", "--task", "peerread95", "--backend", "openai",
                       "--model", MODEL, "--base-url", root + "/v1", "--data-dir", str(data_dir), "--no-cache",
                       "--concurrency", str(concurrency), "--quiet", "--out", str(work / "pb-run")], {}, work),
        "lm-eval": ([str(lm_eval), "--model", "local-chat-completions", "--model_args",
                     (f"model={MODEL},base_url={root}/v1/chat/completions,num_concurrent={concurrency},max_retries=3,"
                      "tokenized_requests=False,tokenizer_backend=None"), "--include_path", str(lm_folder),
                     "--tasks", "peerbench_throughput", "--apply_chat_template", "--system_instruction", system,
                     "--output_path", str(lm_folder / "out")], {}, lm_folder),
        # inspect 0.3.285 takes a task file relative to the folder it runs in
        "inspect_ai": ([str(inspect), "eval", task.name, "--model", f"openai-api/local/{MODEL}",
                        "--max-connections", str(concurrency), "--log-dir", str(in_folder / "logs"),
                        "--display", "none"],
                       {"LOCAL_BASE_URL": root + "/v1", "LOCAL_API_KEY": "EMPTY"}, in_folder),
    }
    if before is not None:
        argv = [*out["peerbench"][0][:-1], str(work / "pb-before")]
        out = {"peerbench (before)": (argv, {"PYTHONPATH": str(before / "src")}, work), **out}
    return {name: spec for name, spec in out.items() if Path(spec[0][0]).exists()}


def measure(server, argv: list[str], env: dict, cwd: Path, latency: float, concurrency: int) -> dict:
    """One whole command; times on the monotonic clock the server's thread also uses."""
    import shutil as _shutil

    run_dir = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    if run_dir is not None:
        _shutil.rmtree(run_dir, ignore_errors=True)
    server.reset()
    load = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    ended = time.monotonic()
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed (exit {done.returncode}): {done.stderr[-3000:]}")
    arrivals = sorted(t for times in server.arrivals.values() for t in times)
    n = len(arrivals)
    ideal = math.ceil(n / concurrency) * latency
    replies = sorted(server.replies)
    span = replies[-1] - arrivals[0]
    # the k-th request after the first wave takes the slot the k-th reply freed
    refill = [arrival - reply for arrival, reply in zip(arrivals[concurrency:], replies)]
    return {"requests": n, "max_in_flight": server.max_in_flight, "efficiency": ideal / span, "span": span,
            "wall": ended - started, "start": arrivals[0] - started, "tail": ended - replies[-1],
            "refill_ms": 1000 * statistics.median(refill) if refill else float("nan"), "load": load}


def help_seconds(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(REPO / ".venv" / "bin" / "peerbench"), "--help"], capture_output=True, check=True)
        out.append(time.perf_counter() - started)
    return out


def spread(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if format(low, fmt) == format(high, fmt) else f"{low:{fmt}}-{high:{fmt}}"


def table(results: dict[str, list[dict]], versions: dict[str, str]) -> str:
    lines = [("| client | runs | ideal / span | wall, whole command (s) | start -> first chat request (s) "
              "| last reply -> exit (s) | refill gap, median (ms) | load avg (1 min) |"), "|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        pick = {key: [run[key] for run in runs] for key in runs[0]}
        label = f"{name} {versions[name]}" if versions.get(name) else name
        lines.append(f"| {label} | {len(runs)} | {spread(pick['efficiency'], '.3f')} "
                     f"| {spread(pick['wall'], '.2f')} | {spread(pick['start'], '.2f')} | {spread(pick['tail'], '.2f')} "
                     f"| {spread(pick['refill_ms'], '.0f')} | {spread(pick['load'], '.2f')} |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    found = {"peerbench": subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c",
                                          "import peerbench; print(peerbench.__version__)"],
                                         capture_output=True, text=True, check=True).stdout.strip()}
    for name, module in (("lm-eval", "lm_eval"), ("inspect_ai", "inspect_ai")):
        python = VENVS[name][0] / "bin" / "python"
        if python.exists():
            code = f"from importlib.metadata import version; print(version('{module}'))"
            found[name] = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                         check=True).stdout.strip()
    return found


def write_table(path: Path, text: str) -> None:
    """Replace what lies between the anchor markers of ``path`` (the prose around it stays)."""
    page = path.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write the table between")
    head, rest = page.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="build the lm-eval and inspect_ai virtualenvs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", action="append", help="peerbench, lm-eval or inspect_ai (repeatable)")
    parser.add_argument("--write", type=Path, help="a page to write the table into, between the anchor markers")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--before", type=Path, help="a peerbench source tree to measure beside this one")
    args = parser.parse_args()
    if args.setup:
        setup()
    from peerread_fixtures import write_peerread

    work = Path(tempfile.mkdtemp(prefix="peerbench-anchor-"))
    env = {**os.environ, "PEERBENCH_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(work / "hf"), "INSPECT_LOG_DIR": str(work / "inspect-logs")}
    data_dir = write_peerread(work / "data", train=False)
    try:
        with timed_server(args.latency) as server:
            tools = commands(server.root_url, work, data_dir, args.concurrency, args.before)
            if args.only:
                tools = {name: spec for name, spec in tools.items() if name in args.only}
            results: dict[str, list[dict]] = {name: [] for name in tools}
            for run in range(args.runs):
                for name, (argv, extra, cwd) in tools.items():
                    figures = measure(server, argv, {**env, **extra}, cwd, args.latency, args.concurrency)
                    results[name].append(figures)
                    print(f"run {run + 1} {name}: " + ", ".join(
                        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()), flush=True)
        helps = help_seconds(5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(results, versions())
    text += (f"\n\n`peerbench --help`: {spread(helps, '.2f')} s (5 runs, median {statistics.median(helps):.2f} s). "
             f"{len(os.sched_getaffinity(0))} CPUs; {args.runs} runs each, interleaved; latency {args.latency:g} s, "
             f"{args.concurrency} in flight.")
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "help_s": helps}, indent=1))
    if args.write:
        write_table(args.write, text)


if __name__ == "__main__":
    main()
