"""`peerbench compare` and `peerbench report --html/--png`: statistics with known answers, real
files, and the page loaded in headless Chromium."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import cli_env, run_cli
from peerread_fixtures import manifest
from sklearn.metrics import cohen_kappa_score

import peerbench
from peerbench.reporting.comparison import mcnemar_exact, paired_bootstrap
from peerbench.errors import ConfigError
from peerbench.metrics import ScoreInputs
from peerbench.metrics.decision import BUILTIN_METRICS

PAIRED = [m for m in BUILTIN_METRICS if m.name in ("f1", "accuracy", "balanced_accuracy")]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_mcnemar_exact_known_answers():
    # 1 vs 9 discordant pairs: p = 2 * (C(10,0) + C(10,1)) / 2**10
    a = [True] * 1 + [False] * 9 + [True] * 20
    b = [False] * 1 + [True] * 9 + [True] * 20
    assert mcnemar_exact(a, b) == {"only_a_correct": 1, "only_b_correct": 9, "p_value": pytest.approx(22 / 1024)}
    assert mcnemar_exact([True, False], [True, False])["p_value"] == 1.0  # no discordant pair


def test_paired_bootstrap_of_a_run_against_itself_is_exactly_zero():
    rng = np.random.default_rng(1)
    y = rng.random(40) < 0.7
    pred = rng.random(40) < 0.6
    inputs = ScoreInputs(y, pred, np.full(40, np.nan), np.zeros(40, dtype=bool))
    diffs = paired_bootstrap(inputs, inputs, PAIRED, resamples=200, seed=0, confidence=0.95)
    for d in diffs.values():
        assert d["difference"] == 0 and d["ci"] == [0.0, 0.0] and d["p_value"] == 1.0


def published_like(path, flip_every):
    """Replay rows: decision = gold, except every n-th paper flipped."""
    with path.open("w") as handle:
        for i, fact in enumerate(manifest()):
            accept = fact["label"] if i % flip_every else not fact["label"]
            key = f"{fact['venue']}/{fact['split']}/{fact['id']}"
            p = 0.8 if accept else 0.2
            handle.write(json.dumps({"id": key, "p": p, "completion":
                                     f"I recommend this paper for {'ACCEPTANCE' if accept else 'REJECTION'}."}) + "\n")
    return path


@pytest.fixture
def two_runs(peerread_root, tmp_path):
    runs = []
    for name, flip in (("a", 3), ("b", 10)):
        replay = published_like(tmp_path / f"{name}.jsonl", flip)
        peerbench.run("peerread95", "replay", str(replay), data_dir=peerread_root, out=tmp_path / name,
                      backend_options={"p_accept_field": "p"}, resamples=50)
        runs.append(tmp_path / name)
    return runs


def test_compare_pairs_the_runs(two_runs):
    result = peerbench.compare(two_runs, resamples=300)
    assert result["n_papers"] == 95 and result["label_rule"] == "recommendation>=4"
    pair = result["pairs"][0]
    # a flips papers 0, 3, 6, ... (32 papers); b flips 0, 10, 20, ... (10); both flip the multiples of 30
    only_b_right = len([i for i in range(95) if i % 3 == 0 and i % 10 != 0])
    only_a_right = len([i for i in range(95) if i % 10 == 0 and i % 3 != 0])
    assert pair["mcnemar"]["only_b_correct"] == only_b_right and pair["mcnemar"]["only_a_correct"] == only_a_right
    assert len(pair["disagreements"]) == only_a_right + only_b_right
    acc = pair["differences"]["accuracy"]
    assert acc["difference"] == pytest.approx((only_b_right - only_a_right) / 95)
    assert acc["ci"][0] > 0 and acc["p_value"] < 0.05
    runs = [{json.loads(line)["id"]: json.loads(line)["decision"] for line in (d / "samples.jsonl").open()}
            for d in two_runs]
    ids = sorted(runs[0])
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score([runs[0][i] for i in ids], [runs[1][i] for i in ids]))
    assert "ece" in result["runs"][0]["metrics"]


def test_compare_refuses_runs_of_different_tasks(two_runs, peerread_root, tmp_path, isolated_home):
    replay = published_like(tmp_path / "c.jsonl", 5)
    peerbench.run("peerread-iclr2017", "replay", str(replay), data_dir=peerread_root, out=tmp_path / "c",
                  resamples=10)
    with pytest.raises(ConfigError, match="cannot compare runs of different tasks"):
        peerbench.compare([two_runs[0], tmp_path / "c"])
    done = run_cli(["compare", str(two_runs[0]), str(tmp_path / "c")], cli_env(isolated_home))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    shown = run_cli(["compare", *map(str, two_runs), "--resamples", "100"], cli_env(isolated_home))
    assert shown.returncode == 0 and "McNemar exact" in shown.stdout and "B minus A" in shown.stdout


def test_report_writes_valid_pngs_and_a_self_contained_page(two_runs, tmp_path):
    metrics = peerbench.report(two_runs[0], html=tmp_path / "report.html", png_dir=tmp_path / "png", resamples=50)
    assert "ece" in metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["accept_rates.png", "confusion_matrix.png", "p_accept_histogram.png", "reliability.png"]
    for png in (tmp_path / "png").iterdir():
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, png
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and 'id="metrics"' in page
    assert "http://" not in page and "https://" not in page  # nothing loads from elsewhere


def test_review_text_is_escaped(peerread_root, tmp_path):
    rows = [{"id": f"{f['venue']}/{f['split']}/{f['id']}", "completion":
             "<script>alert(1)</script> I recommend this paper for ACCEPTANCE."} for f in manifest()]
    (tmp_path / "evil.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    peerbench.run("peerread95", "replay", str(tmp_path / "evil.jsonl"), data_dir=peerread_root, out=tmp_path / "run",
                  resamples=10)
    peerbench.report(tmp_path / "run", html=tmp_path / "r.html", resamples=10)
    page = (tmp_path / "r.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium package)")
def test_report_loads_in_headless_chromium(two_runs, tmp_path):
    peerbench.report(two_runs[0], html=tmp_path / "report.html", resamples=50)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    url = (tmp_path / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table id="metrics">' in dom.stdout and "balanced_accuracy" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # no console message at all, errors included
    shot = subprocess.run([*flags, "--window-size=1200,1600", f"--screenshot={tmp_path / 'report.png'}", url],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and (tmp_path / "report.png").read_bytes().startswith(PNG_MAGIC)


def test_run_report_html_and_compare_print_the_same_intervals(peerread_root, tmp_path):
    """The same samples give the same numbers whichever command reads them, with the run's own bootstrap."""
    import re

    replay = published_like(tmp_path / "a.jsonl", 7)
    run = peerbench.run("peerread95", "replay", str(replay), data_dir=peerread_root, out=tmp_path / "a",
                        backend_options={"p_accept_field": "p"}, resamples=300, seed=7)
    stored = tmp_path / "a" / "samples.jsonl"  # as a concurrent backend writes it: in completion order
    stored.write_text("\n".join(reversed(stored.read_text().splitlines())) + "\n")
    other = peerbench.run("peerread95", "baseline", "always-accept", data_dir=peerread_root, out=tmp_path / "b",
                          resamples=300, seed=7)
    reported = peerbench.report(tmp_path / "a", html=tmp_path / "a.html")
    compared = peerbench.compare([tmp_path / "a", other.run_dir])
    rule = "recommendation>=4"
    for name in ("f1", "balanced_accuracy", "auroc"):
        expected = run.metrics["label_rules"][rule]["overall"]["metrics"][name]
        assert reported["label_rules"][rule]["overall"]["metrics"][name] == expected
        assert compared["runs"][0]["metrics"][name] == expected
    assert reported["bootstrap"] == {"resamples": 300, "seed": 7, "confidence": 0.95}
    page = (tmp_path / "a.html").read_text()
    assert re.search(r"auroc \(\d+ of 95 papers with P\)", page)


def test_the_page_draws_its_figures_from_the_papers_its_numbers_are_over(peerread_root, tmp_path, monkeypatch):
    """A directory that holds more papers than its last run selected: the reliability diagram is
    drawn from the selection, as the metrics are, not from every stored line."""
    from peerbench.reporting import plots
    from peerbench.reporting.html import build_report

    run_dir = tmp_path / "run"
    peerbench.run("peerread95", "baseline", "tfidf-lr", data_dir=peerread_root, out=run_dir, resamples=10)
    peerbench.run("peerread95", "baseline", "tfidf-lr", data_dir=peerread_root, out=run_dir, resamples=10, limit=10)
    drawn = []
    monkeypatch.setattr(plots, "reliability_diagram", lambda y, p: drawn.append(len(y)) or PNG_MAGIC)
    metrics = build_report(run_dir, png_dir=tmp_path / "png")
    assert metrics["label_rules"]["recommendation>=4"]["overall"]["n"] == 10 and drawn == [10]
