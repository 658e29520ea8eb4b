"""Time the offline review measures on a peerread95-sized run (docs/performance.md).

95 synthetic papers the size of PeerRead's (a body of about 46,000 characters, a third of them cut
by truncation), 95 reviews of about 1,000 words in the reference format with numbers, references,
quotes and named terms, and three human reviews of about 400 words per paper. Timed: structure,
grounding and ROUGE-L (the encoder off), each paper's texts built as scoring builds them, with
1,000 bootstrap resamples, in a fresh process (imports included), best of --runs.

    python benchmarks/review_measures.py --runs 5
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time

WORDS = ("model data training network learning method results task evaluation corpus parser embedding attention "
         "gradient benchmark baseline ablation feature sentence graph the of and a to in we our is").split()


def text(rng: random.Random, n: int) -> str:
    out = []
    for i in range(n):
        out.append(rng.choice(WORDS))
        if i % 97 == 0:
            out.append(f"{rng.randint(10, 99)}.{rng.randint(0, 9)}%")
        if i % 301 == 0:
            out.append(f"Table {rng.randint(1, 6)}")
        if i % 211 == 0:
            out.append(rng.choice(["BiLSTM", "ResNet", "Penn Treebank", "BERT", "Wall Street Journal"]))
    return " ".join(out)


def review(rng: random.Random) -> str:
    parts = [f"## Summary\n{text(rng, 150)}", f"## Strengths\n- {text(rng, 120)}\n- {text(rng, 60)}",
             f"## Weaknesses\n- {text(rng, 150)}\n- \"{' '.join(rng.sample(WORDS, 5))}\"",
             f"## Technical Soundness\n{text(rng, 200)}", f"## Clarity and Writing\n{text(rng, 120)}",
             f"## Significance\n{text(rng, 150)}", "## Final Recommendation\nI recommend this paper for ACCEPTANCE."]
    return "\n\n".join(parts)


def measure() -> float:
    start = time.perf_counter()
    from peerbench.metrics import grounding, similarity, structure
    from peerbench.metrics.review import ReviewInput
    from peerbench.metrics.review_format import format_of_template
    from peerbench.reference import card
    from peerbench.reporting.review_scoring import _group

    rng = random.Random(0)
    fmt = format_of_template(card()["system"], card()["user_template"])
    inputs = []
    for index in range(95):
        whole = text(rng, 7000)  # about 46,000 characters
        given = whole[: 40000] if index % 3 == 0 else whole
        inputs.append(ReviewInput(f"p{index}", "v", review(rng), fmt, "reference", 1400, given, whole,
                                  tuple(text(rng, 400) for _ in range(3))))
    built = time.perf_counter()
    model, human, parts = {}, {}, []
    for m in (structure.STRUCTURE, grounding.GROUNDING, similarity.SIMILARITY):
        t0 = time.perf_counter()
        result = m.measure(inputs, {})
        model[m.name], human[m.name] = result if m.paired else (result, None)
        parts.append(f"{m.name} {time.perf_counter() - t0:.2f}")
    t0 = time.perf_counter()
    _group(list(range(95)), model, human, inputs, {"resamples": 1000, "seed": 0, "confidence": 0.95})
    parts.append(f"means and intervals {time.perf_counter() - t0:.2f}")
    done = time.perf_counter()
    print(f"{done - built:.3f} {built - start:.3f} {', '.join(parts)}")
    return done - built


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        measure()
        return
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        scored, setup, parts = out.stdout.split(" ", 2)
        times.append((float(scored), float(setup), wall, parts.strip()))
    for scored, setup, wall, parts in times:
        print(f"measures {scored:.2f} s ({parts}); imports + building the synthetic inputs {setup:.2f} s; "
              f"process {wall:.2f} s")
    print(f"best: {min(t[0] for t in times):.2f} s, median {sorted(t[0] for t in times)[len(times) // 2]:.2f} s")


if __name__ == "__main__":
    main()
