"""The protocol layer's cost: one-call path vs the multi-call harness on the anchor workload.

The 95 peerread95 prompts of benchmarks/anchor.py (synthetic PeerRead fixtures), one loopback
OpenAI-compatible server answering after ``--latency`` seconds, 16 requests in flight, no cache.
Four runs through the Python API (``peerbench.run``), each timed by the server:

- ``single``: the one-call path (95 requests);
- ``one-call``: a protocol making that same call through the multi-call harness (95 requests);
- ``self-consistency``: k = 3 independent requests per paper, the one-call path's batch (285);
- ``chain-3``: a protocol whose 3 calls per paper each wait for the previous answer (285).

efficiency = ideal span / measured span, with the ideal ceil(requests / 16) x latency: a paper's
sequential calls cost nothing extra when other papers' calls fill the slots meanwhile.

    python benchmarks/protocols.py --latency 0.2 --runs 3 [--write docs/performance.md]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
BEGIN, END = "<!-- protocols:begin -->", "<!-- protocols:end -->"

import peerbench  # noqa: E402


class OneCall(peerbench.Protocol):
    name = "one-call"

    async def review(self, prompt, call):
        reply = (await call(prompt.messages))[0]
        return peerbench.Review(reply.text, reply.p_accept)


class Chain3(peerbench.Protocol):
    name = "chain-3"

    async def review(self, prompt, call):
        history = list(prompt.messages)
        for round_ in range(3):
            reply = (await call(history, label=f"step {round_ + 1}"))[0]
            history += [{"role": "assistant", "content": reply.text}, {"role": "user", "content": "Once more."}]
        return peerbench.Review(reply.text)


class Plugin:
    @peerbench.hookimpl
    def register_protocols(self, register):
        register("one-call", OneCall)
        register("chain-3", Chain3)


ARMS = {"single": {}, "one-call": {"protocol": "one-call"}, "self-consistency": {"samples": 3},
        "chain-3": {"protocol": "chain-3"}}


def measure(server, data_dir: Path, work: Path, arm: str, latency: float, concurrency: int) -> dict:
    import time

    server.reset()
    started = time.monotonic()
    peerbench.run("peerread95", "openai", server.model, data_dir=data_dir, out=work / f"{arm}-{started}",
                  backend_options={"base_url": server.base_url}, use_cache=False, concurrency=concurrency,
                  resamples=0, **ARMS[arm])
    wall = time.monotonic() - started
    arrivals = sorted(t for times in server.arrivals.values() for t in times)
    span = max(server.replies) - arrivals[0]
    ideal = math.ceil(len(arrivals) / concurrency) * latency
    return {"requests": len(arrivals), "max_in_flight": server.max_in_flight, "efficiency": ideal / span,
            "span": span, "wall": wall, "load": os.getloadavg()[0]}


def table(results: dict[str, list[dict]], latency: float, concurrency: int) -> str:
    lines = [f"| run | requests | in flight (max) | efficiency | span s | load |", "|---|---|---|---|---|---|"]
    for arm, rows in results.items():
        eff = [r["efficiency"] for r in rows]
        lines.append(f"| {arm} | {rows[0]['requests']} | {max(r['max_in_flight'] for r in rows)} | "
                     f"{statistics.median(eff):.3f} ({min(eff):.3f}-{max(eff):.3f}) | "
                     f"{statistics.median(r['span'] for r in rows):.2f} | "
                     f"{statistics.median(r['load'] for r in rows):.1f} |")
    return (f"latency {latency:g} s per request, --concurrency {concurrency}, median (range) of "
            f"{len(next(iter(results.values())))} runs each\n\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="replace the figures between the markers here")
    args = parser.parse_args()
    from anchor import timed_server
    from peerread_fixtures import write_peerread

    from peerbench import plugins, registry

    plugins.load_plugins()
    plugins.pm.register(Plugin(), name="benchmark-protocols")
    registry.reset()
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp, timed_server(args.latency) as server:
        os.environ["PEERBENCH_HOME"] = str(Path(tmp) / "home")
        data_dir = write_peerread(Path(tmp) / "data", train=False)
        for _ in range(args.runs):
            for arm in ARMS:  # interleaved, so that the machine's load moves every arm alike
                results[arm].append(measure(server, data_dir, Path(tmp), arm, args.latency, args.concurrency))
                print(arm, {k: round(v, 3) for k, v in results[arm][-1].items()}, flush=True)
    text = table(results, args.latency, args.concurrency)
    print(text)
    if args.write:
        doc = args.write.read_text()
        head, rest = doc.split(BEGIN, 1)
        args.write.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
