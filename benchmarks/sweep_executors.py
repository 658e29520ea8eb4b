"""Wall time of one 4-run sweep (2 models x 2 tasks) with the local executor and with Ray on this
machine: baselines (CPU-bound, instant) and a scripted OpenAI-compatible server with a fixed 200 ms
per request (HTTP-bound), on the synthetic PeerRead files the tests use.

    python benchmarks/sweep_executors.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from openai_server import OpenAIChatServer
    from peerread_fixtures import write_peerread

    from peerbench.pipeline.sweep import sweep

    work = Path(tempfile.mkdtemp(prefix="peerbench-sweep-bench-"))
    os.environ["PEERBENCH_HOME"] = str(work / "home")
    data = write_peerread(work / "data")
    with OpenAIChatServer(latency=0.2) as server:
        suites = {
            "baselines": [{"name": "accept", "backend": "baseline", "model": "always-accept"},
                          {"name": "tfidf", "backend": "baseline", "model": "tfidf-lr"}],
            "http (200 ms/request)": [{"name": f"scripted-{i}", "backend": "openai", "model": server.model,
                                       "options": {"base_url": server.base_url}} for i in (1, 2)],
        }
        for label, models in suites.items():
            spec = work / f"{label.split()[0]}.yaml"
            spec.write_text(yaml.safe_dump({"name": label.split()[0], "models": models, "data_dir": str(data),
                                            "tasks": ["peerread95", "peerread-iclr2017"]}))
            for executor in ("local", "ray"):
                started = time.perf_counter()
                summary = sweep(spec, out=work / f"{label.split()[0]}-{executor}", executor=executor, progress=False,
                                max_parallel=4)
                wall = time.perf_counter() - started
                assert not any(r.get("error") for r in summary["runs"]), summary
                print(f"{label}: {executor} executor, 4 runs: {wall:.1f} s (sweep loop {summary['wall_s']:.1f} s)",
                      flush=True)
                if executor == "ray":
                    import ray

                    ray.shutdown()


if __name__ == "__main__":
    main()
