"""Corpus scale: a fresh run, a rerun of the finished run, and `report`, at 2,000 / 20,000 /
200,000 papers, time and peak memory of each whole command (process start to exit).

The task is a synthetic JSONL file built here: papers of about 6 KB (title, abstract, five
sections of made-up words), three reviewer ratings each, run with the ``baseline`` backend's
always-accept model, so the figures are peerbench's own cost per paper (reading, checking,
prompting, storing, scoring), not a model's.

    python benchmarks/scale.py --papers 2000 20000 200000 --write docs/performance.md

Peak memory is the command's maximum resident set size (``getrusage`` of the finished child).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("model data training network learning method results task evaluation corpus parser embedding "
         "attention gradient benchmark baseline ablation feature sentence graph robust novel limited").split()
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def write_task(folder: Path, papers: int, seed: int = 0) -> Path:
    """papers.jsonl (about 6 KB a paper) and a task file naming it."""
    rng = random.Random(seed)
    vocabulary = [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(64)]
    with (folder / "papers.jsonl").open("w") as handle:
        for index in range(papers):
            sections = [{"heading": f"{k} Section", "text": " ".join(rng.choice(vocabulary) for _ in range(4))}
                        for k in range(1, 6)]
            handle.write(json.dumps({"id": f"p{index}", "title": f"Paper {index}", "abstract": vocabulary[index % 64],
                                     "sections": sections, "recommendations": [rng.randint(1, 5) for _ in range(3)],
                                     "accepted": rng.random() < 0.3, "venue": "synthetic"}) + "\n")
    task = folder / "scale.yaml"
    task.write_text("task: scale\nversion: 1\ndataset:\n  name: jsonl\n  path: papers.jsonl\n"
                    "label_rule: recommendation>=4\nreport_label_rules: [decision]\n")
    return task


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one whole command."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, usage = __import__("os").wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if child.returncode not in (0, None) and usage is None:
        raise SystemExit(f"{args}: failed")
    return seconds, usage.ru_maxrss / 1024


LOADS: dict[int, float] = {}  # papers -> 1-minute load average when their measurement began


def measure(papers: int, work: Path) -> dict[str, tuple[float, float]]:
    import os

    LOADS[papers] = os.getloadavg()[0]

    folder = work / f"n{papers}"
    folder.mkdir()
    task = write_task(folder, papers)
    env = {**os.environ, "PEERBENCH_HOME": str(folder / "home")}
    cli = [sys.executable, "-m", "peerbench.cli"]
    run = [*cli, "run", "--backend", "baseline", "--model", "always-accept", "--task", "scale",
           "--include-path", str(task), "--out", str(folder / "run"), "--quiet"]
    figures = {"fresh run": timed(run, env), "rerun (all answered)": timed(run, env),
               "report": timed([*cli, "report", str(folder / "run")], env)}
    shutil.rmtree(folder)
    return figures


def table(results: dict[int, dict[str, tuple[float, float]]]) -> str:
    sizes = sorted(results)
    lines = ["| step | " + " | ".join(f"{n:,} papers" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for step in next(iter(results.values())):
        cells = [f"{results[n][step][0]:.1f} s, {results[n][step][1]:,.0f} MB" for n in sizes]
        lines.append(f"| `{step}` | " + " | ".join(cells) + " |")
    loads = ", ".join(f"{LOADS[n]:.1f} ({n:,})" for n in sizes if n in LOADS)
    lines.append(f"\nLoad average (1 min) when each size began: {loads}; {os.cpu_count()} CPUs.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--write", type=Path, default=None, help="put the table between the scale markers of FILE")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for papers in args.papers:
            results[papers] = measure(papers, Path(work))
            print(papers, results[papers], f"load {__import__('os').getloadavg()[0]:.2f}", flush=True)
    text = table(results)
    print(text)
    if args.write:
        page = args.write.read_text()
        start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
        args.write.write_text(page[:start] + "\n" + text + "\n" + page[end:])


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
