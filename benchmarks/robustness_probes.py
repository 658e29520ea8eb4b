"""Flip rates of the injection probe and sensitivity to perturbations, for the reviewers that run
on any machine: the three baselines (on the synthetic PeerRead-shaped papers the tests use) and a
tiny random model through the hf backend. Prints the markdown table docs/robustness.md shows.

    python benchmarks/robustness_probes.py [--data-dir PEERREAD_DATA]   # real PeerRead if you have it
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def fmt(value, ci=None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="a PeerRead data/ folder (default: synthetic fixtures)")
    parser.add_argument("--skip-tiny", action="store_true", help="leave out the tiny hf model (needs torch)")
    args = parser.parse_args()
    from peerbench.pipeline.probes import run_probes

    work = Path(tempfile.mkdtemp(prefix="peerbench-probes-"))
    os.environ.setdefault("PEERBENCH_HOME", str(work / "home"))
    data_dir = args.data_dir
    if data_dir is None:
        from peerread_fixtures import write_peerread

        data_dir = write_peerread(work / "data")
    reviewers = [("baseline", "tfidf-lr", {}, {}), ("baseline", "always-accept", {}, {}),
                 ("baseline", "always-reject", {}, {})]
    if not args.skip_tiny:
        from tiny_model import build_tiny_model

        tiny = build_tiny_model(work / "tiny-reviewer")
        reviewers.append(("hf", str(tiny), {"batch_size": 8}, {"max_tokens": 48, "temperature": 0.0}))
    print("| reviewer | arm | clean rejected | flip REJECT→ACCEPT | decisions changed | reviews changed "
          "| P(accept) shift |")
    print("|---|---|---|---|---|---|---|")
    for backend, model, options, generation in reviewers:
        report = run_probes("peerread95", backend, model, probes=["injection", "perturbations"],
                            positions=["start", "middle", "end"], out=work / f"{backend}-{Path(model).name}",
                            data_dir=data_dir, backend_options=options, generation=generation or None,
                            max_model_len=4096 if backend == "hf" else None, resamples=1000)
        name = f"{backend}:{Path(model).name}"
        for arm, row in report["arms"].items():
            shift = row["p_accept_shift"]
            print(f"| {name} | {arm} | {row['clean_rejected']} | {fmt(row['flip_reject_to_accept'], row['flip_reject_to_accept_ci'])} "
                  f"| {fmt(row['decision_changed'])} | {fmt(row['review_changed'])} "
                  f"| {'—' if shift is None else f'{shift:+.3f}'} |")


if __name__ == "__main__":
    main()
