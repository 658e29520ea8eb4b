"""peerread95 end to end with an instant backend (replay): how much time is peerbench's own?

    python benchmarks/overhead.py [--repeats 3]
Builds the synthetic PeerRead fixture of the tests (95 papers in the real schema) in a temporary
folder, writes a replay file of completions, and times `peerbench.run` from the task name to
metrics.json (data loading, prompt rendering, storage, parsing, 1,000-resample bootstrap).
Prints seconds and the share spent outside the backend. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from peerread_fixtures import manifest, write_peerread

    import peerbench

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["PEERBENCH_HOME"] = str(tmp_path / "home")
        data = write_peerread(tmp_path / "data", train=False)
        replay = tmp_path / "replay.jsonl"
        with replay.open("w") as handle:
            for fact in manifest():
                verdict = "ACCEPTANCE" if fact["label"] else "REJECTION"
                handle.write(json.dumps({"id": f"{fact['venue']}/{fact['split']}/{fact['id']}",
                                         "completion": "## Summary\n...\nI recommend this paper for "
                                                       f"{verdict}."}) + "\n")
        timings = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            result = peerbench.run(task="peerread95", backend="replay", model=str(replay), data_dir=data,
                                   out=tmp_path / f"run{repeat}", resamples=1000)
            total = time.perf_counter() - started
            backend = sum(s["latency_s"] for s in result.samples)
            timings.append((total, backend))
        for total, backend in timings:
            print(f"peerread95 replay: {total:.3f} s end to end, backend {1000 * backend:.2f} ms, "
                  f"outside the backend {100 * (total - backend) / total:.1f}%")
        best = min(timings)
        print(f"best of {args.repeats}: {best[0]:.3f} s for {len(result.samples)} papers "
              f"({1000 * best[0] / len(result.samples):.1f} ms per paper)")


if __name__ == "__main__":
    main()
