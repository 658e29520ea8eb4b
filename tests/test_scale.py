"""Corpus scale (issue 36): a run streams its papers, so its memory does not grow with the corpus,
and bad data far down a large file is still named before any request."""

import json
import os
import resource
import subprocess
import sys

import pytest
from conftest import cli_env

import peerbench
from peerbench.pipeline.store import read_run
from peerbench.registry import registries
from peerbench.reporting.scoring import score_run

PAPERS, PAPER_BYTES = 3000, 60_000  # a 180 MB corpus
# Address space for the whole CLI process (interpreter, numpy, pydantic and the run), calibrated on
# the development machine: the code before streaming needed about 750 MB here (it held every paper,
# every prompt and every sample at once: failed at 700 MB), the streaming run under 450 MB.
ADDRESS_SPACE_MB = 600
WORDS = "model data training network learning method results task evaluation corpus parser embedding".split()


def write_corpus(folder, papers=PAPERS, paper_bytes=PAPER_BYTES):
    body = " ".join(WORDS[j % len(WORDS)] for j in range(paper_bytes // 7))
    with (folder / "papers.jsonl").open("w") as handle:
        for i in range(papers):
            handle.write(json.dumps({"id": f"p{i}", "title": f"Paper {i}", "abstract": "a",
                                     "sections": [{"heading": "1 Body", "text": f"{i} {body}"}],
                                     "recommendations": [1 + i % 5, 1 + (i * 3) % 5], "accepted": i % 3 == 0}) + "\n")
    task = folder / "big.yaml"
    task.write_text("task: big\nversion: 1\ndataset:\n  name: jsonl\n  path: papers.jsonl\n"
                    "label_rule: recommendation>=4\nreport_label_rules: [decision]\nmax_model_len: 1000000\n")
    return task


def limited(megabytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    return apply


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is calibrated on Linux")
def test_a_large_corpus_runs_in_bounded_memory_and_scores_as_the_whole_samples_do(tmp_path):
    task = write_corpus(tmp_path)
    out = tmp_path / "run"
    env = cli_env(tmp_path / "home", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    args = [sys.executable, "-m", "peerbench.cli", "run", "--include-path", str(task), "--task", "big",
            "--backend", "baseline", "--model", "always-accept", "-q", "--out", str(out), "--resamples", "50",
            "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=limited(ADDRESS_SPACE_MB))
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout)

    # by hand: always-accept recalls every gold accept; precision is the share of gold accepts
    gold = [(1 + i % 5 + 1 + (i * 3) % 5) / 2 >= 4 for i in range(PAPERS)]
    share = sum(gold) / PAPERS
    overall = metrics["label_rules"]["recommendation>=4"]["overall"]
    assert overall["n"] == PAPERS and overall["metrics"]["recall"]["value"] == 1.0
    assert overall["metrics"]["precision"]["value"] == pytest.approx(share, abs=1e-12)
    assert overall["metrics"]["f1"]["value"] == pytest.approx(2 * share / (1 + share), abs=1e-12)

    # the unstreamed computation: every stored line read whole, scored at once
    config, samples = read_run(out)
    regs = registries()
    whole = score_run(samples, config, [regs.metrics.get(n).value for n in config["metrics"]], resamples=50, seed=0)
    for key in ("label_rules", "decisions", "n_answered", "complete", "truncation", "tokens"):
        assert metrics[key] == whole[key], key
    assert metrics["label_rules"]["decision"]["baselines"]["one human reviewer"]["n"] == PAPERS
    config_text = (out / "config.json").read_text()
    assert len(config_text) < 20_000 and "p2999" not in config_text  # the keys are in paper_keys.txt
    assert (out / "paper_keys.txt").read_text().splitlines() == [f"custom/p{i}" for i in range(PAPERS)]

    # the rerun requests nothing and prints the same numbers; report too
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600,
                           preexec_fn=limited(ADDRESS_SPACE_MB))
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["label_rules"] == metrics["label_rules"]
    assert len((out / "samples.jsonl").read_text().splitlines()) == PAPERS
    report = subprocess.run([sys.executable, "-m", "peerbench.cli", "report", str(out), "--json"], env=env,
                            capture_output=True, text=True, timeout=600, preexec_fn=limited(ADDRESS_SPACE_MB))
    assert report.returncode == 0, report.stderr[-2000:]
    assert json.loads(report.stdout)["label_rules"] == metrics["label_rules"]


def test_a_malformed_line_150000_is_named_before_any_request(tmp_path):
    line = '{"id": "p%d", "title": "T", "body": "b"}\n'
    with (tmp_path / "papers.jsonl").open("w") as handle:
        handle.write("".join(line % i for i in range(1, 150_000)))
        handle.write('{"id": "p150000", "title": "T", "body": "b"\n')  # the closing brace is missing
        handle.write(line % 150_001)
    (tmp_path / "t.yaml").write_text("task: long\nversion: 1\ndataset:\n  name: jsonl\n  path: papers.jsonl\n"
                                     "label_rule: decision\n")
    with pytest.raises(peerbench.DataError, match=r"papers\.jsonl:150000: not valid JSON"):
        peerbench.run("long", "baseline", "always-accept", include_paths=[tmp_path / "t.yaml"], out=tmp_path / "run")
    assert not (tmp_path / "run" / "samples.jsonl").exists()  # nothing was requested, nothing stored


@pytest.mark.fast
def test_the_stream_is_read_twice_and_never_held_whole(tmp_path, monkeypatch):
    """The run reads the dataset once to check it, once for the papers to request and once for the
    review measures (docs/metrics.md), one paper at a time: the second read starts only after the
    whole file was checked."""
    from peerbench.datasets.jsonl import JsonlDataset

    with (tmp_path / "papers.jsonl").open("w") as handle:
        for i in range(1200):
            handle.write(json.dumps({"id": f"p{i}", "title": "T", "body": "b", "accepted": i % 2 == 0}) + "\n")
    (tmp_path / "t.yaml").write_text("task: s\nversion: 1\ndataset:\n  name: jsonl\n  path: papers.jsonl\n"
                                     "label_rule: decision\n")
    reads = []
    original = JsonlDataset.iter_papers

    def counting(self, args, *, progress=True):
        reads.append(0)
        for paper in original(self, args, progress=progress):
            reads[-1] += 1
            yield paper

    monkeypatch.setattr(JsonlDataset, "iter_papers", counting)
    monkeypatch.setattr(JsonlDataset, "load", lambda *a, **k: pytest.fail("a run never loads the list"))
    result = peerbench.run("s", "baseline", "always-accept", include_paths=[tmp_path / "t.yaml"],
                           out=tmp_path / "run", resamples=20)
    assert reads == [1200, 1200, 1200] and result.metrics["n_answered"] == 1200
    assert result.metrics["label_rules"]["decision"]["overall"]["metrics"]["precision"]["value"] == 0.5
    assert len(result.samples) == 1200 and result.samples[0]["completion"].startswith("## Summary")
    again = peerbench.run("s", "baseline", "always-accept", include_paths=[tmp_path / "t.yaml"],
                          out=tmp_path / "run", resamples=20)
    assert reads == [1200, 1200, 1200, 1200, 1200]  # all answered: checked, then measured; no request read
    assert again.metrics["label_rules"] == result.metrics["label_rules"]


def random_samples(n, seed, venues=1):
    import random

    rnd = random.Random(seed)
    samples = []
    for i in range(n):
        recs = [rnd.randint(1, 5) for _ in range(rnd.choice([1, 2, 3]))]
        samples.append({"id": f"v{i % venues}/p{i}", "venue": f"v{i % venues}",
                        "decision": rnd.choice(["ACCEPT"] * 5 + ["REJECT"] * 4 + ["UNPARSED", "AMBIGUOUS"]),
                        "gold": {"recommendation>=4": sum(recs) / len(recs) >= 4, "decision": rnd.random() < 0.3},
                        "p_accept": None if rnd.random() < 0.1 else round(rnd.random(), 2), "error": None,
                        "mean_recommendation": sum(recs) / len(recs), "recommendations": recs,
                        "rating": None if rnd.random() < 0.2 else rnd.randint(1, 10), "rating_scale": [1, 10]})
    return samples


def scored(samples, resamples=200):
    from peerbench.reporting.scoring import score_samples

    regs = registries()
    return score_samples(samples, label_rules=["recommendation>=4", "decision"], resamples=resamples,
                         metrics=[regs.metrics.get(n).value for n in regs.metrics.names()])


@pytest.mark.fast
def test_the_bootstrap_in_chunks_gives_the_intervals_of_one_whole_draw(monkeypatch):
    """Resamples drawn and scored a few rows at a time: the same intervals, to the last bit, as one
    (resamples x n) draw (the chunk holding every row is the bootstrap as it was before chunks)."""
    from peerbench.reporting import resampling

    samples = random_samples(150, seed=3, venues=2)
    monkeypatch.setattr(resampling, "CHUNK_ENTRIES", 10**9)
    whole = scored(samples)
    monkeypatch.setattr(resampling, "CHUNK_ENTRIES", 150 * 7)  # 7 resamples a chunk, the last one short
    monkeypatch.setattr(resampling, "MIN_ROWS", 1)
    assert scored(samples) == whole
    venue = whole["label_rules"]["decision"]["per_venue"]["v0"]["metrics"]
    assert venue["auroc"]["ci"] is not None and venue["rating_kendall"]["ci"] is not None


def test_pairs_counted_from_level_tables_equal_scipy_per_row(monkeypatch):
    """Above 400 papers, Kendall's tau, pairwise accuracy and Spearman's ranks of the bootstrap and
    the human ceiling come from (human level x model level) tables: the same numbers as scipy per
    resample and per draw (forced here by allowing no table at all)."""
    from peerbench.metrics import ceiling, tau

    samples = random_samples(1200, seed=5)
    tables = scored(samples, resamples=40)
    ceiling._against_the_others.cache_clear()
    monkeypatch.setattr(tau, "MAX_CELLS", 0)  # every table too large: scipy and sorting, as before
    assert scored(samples, resamples=40) == tables
    human = tables["label_rules"]["decision"]["baselines"]["one human reviewer"]
    assert human["draws"] == 200 and human["n"] > 400 and -1 < human["rating_kendall"] < 1


@pytest.mark.fast
def test_report_scores_the_selection_of_the_last_run_from_paper_keys_txt(tmp_path):
    """config.json holds the selection's hash and count; the keys are in paper_keys.txt, and
    `report` (read_run) scores the last run's selection from it, as it did from config.json."""
    from peerbench.reporting.scoring import rescore

    with (tmp_path / "papers.jsonl").open("w") as handle:
        for i in range(6):
            handle.write(json.dumps({"id": f"p{i}", "title": "T", "body": "b", "accepted": i < 2}) + "\n")
    (tmp_path / "t.yaml").write_text("task: k\nversion: 1\ndataset:\n  name: jsonl\n  path: papers.jsonl\n"
                                     "label_rule: decision\n")
    kwargs = dict(include_paths=[tmp_path / "t.yaml"], out=tmp_path / "run", resamples=20)
    peerbench.run("k", "baseline", "always-accept", **kwargs)
    narrowed = peerbench.run("k", "baseline", "always-accept", limit=4, **kwargs)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "paper_keys" not in config and config["n_papers"] == 4
    assert (tmp_path / "run" / "paper_keys.txt").read_text() == "".join(f"custom/p{i}\n" for i in range(4))
    assert read_run(tmp_path / "run")[0]["paper_keys"] == [f"custom/p{i}" for i in range(4)]
    again = rescore(tmp_path / "run")
    assert again["n_papers"] == 4 and again["label_rules"] == narrowed.metrics["label_rules"]
    assert again["label_rules"]["decision"]["overall"]["metrics"]["precision"]["value"] == 0.5  # 2 of 4
    (tmp_path / "run" / "paper_keys.txt").write_text("custom/p0\n")  # not the file config.json names
    assert rescore(tmp_path / "run")["label_rules"]["decision"]["overall"]["n"] == 6  # every sample


def test_the_in_flight_bound_stays_full_across_chunks(peerread_root, tmp_path, monkeypatch):
    """Papers are prepared a chunk at a time, and the next chunk is sent while the last one is in
    flight: with chunks of 7 papers and 8 requests allowed in flight, 8 are (one chunk after
    another would never pass 7)."""
    from openai_server import OpenAIChatServer

    from peerbench.pipeline import stream

    monkeypatch.setattr(stream, "CHUNK_PAPERS", 7)
    with OpenAIChatServer(latency=0.05) as server:
        result = peerbench.run("peerread95", "openai", server.model, data_dir=peerread_root, out=tmp_path / "run",
                               backend_options={"base_url": server.base_url}, concurrency=8, resamples=10)
        assert server.hits["POST /v1/chat/completions"] == 95
        assert server.max_in_flight == 8
    assert result.metrics["n_answered"] == 95
