"""`peerbench report SWEEP_DIR --html`: the leaderboard of a real local sweep (the baselines and a
scripted OpenAI-compatible reviewer on 127.0.0.1), its numbers checked against `report` and
`compare`, and the page loaded in headless Chromium at 1280 px."""

import json
import re
import shutil
import struct
import subprocess

import pytest
import yaml
from conftest import cli_env, run_cli
from openai_server import OpenAIChatServer

import peerbench
from peerbench.errors import ConfigError
from peerbench.pipeline.sweep import sweep
from peerbench.reporting.leaderboard import BOARD_COLUMNS, REVIEW_COLUMNS, build_leaderboard, ceiling_of, pvalue, sweep_runs

MODELS = ("accept", "tfidf", "scripted")
TASKS = ("peerread95", "peerread-iclr2017")


@pytest.fixture(scope="module")
def board(peerread_root, tmp_path_factory):
    """(folder, the board's JSON): a sweep of 3 models x 2 tasks, and its board made by the real command."""
    folder = tmp_path_factory.mktemp("board")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch, OpenAIChatServer() as server:
        patch.setenv("PEERBENCH_HOME", str(home))
        models = [{"name": "accept", "backend": "baseline", "model": "always-accept"},
                  {"name": "tfidf", "backend": "baseline", "model": "tfidf-lr"},
                  {"name": "scripted", "backend": "openai", "model": server.model,
                   "options": {"base_url": server.base_url, "retry_backoff": 0.01}}]
        (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": "board", "models": models, "tasks": list(TASKS),
                                                           "data_dir": str(peerread_root)}))
        sweep(folder / "sweep.yaml", out=folder / "sweep", progress=False)
    done = run_cli(["report", str(folder / "sweep"), "--html", str(folder / "site" / "board.html"), "--json"],
                   cli_env(home), timeout=300)
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout), done.stderr


def test_the_board_holds_the_runs_own_numbers_and_compare_s_tests(board):
    folder, data, stderr = board
    # the library's report() makes the same board from a sweep folder
    assert peerbench.report(folder / "sweep", html=folder / "again" / "board.html") == data
    assert [t["task"] for t in data["tasks"]] == list(TASKS) and data["rank_by"] == "balanced_accuracy"
    for task in data["tasks"]:
        rows = task["rows"]
        assert sorted(row["model"] for row in rows) == sorted(MODELS)
        ranked = [row["metrics"]["balanced_accuracy"]["value"] for row in rows]
        assert ranked == sorted(ranked, reverse=True) and [row["best"] for row in rows] == [True, False, False]
        best = folder / "sweep" / rows[0]["name"]
        for row in rows:
            run_dir = folder / "sweep" / row["name"]
            own = peerbench.report(run_dir)  # the run's own bootstrap, as the board used
            rule = own["primary_label_rule"]
            assert task["label_rule"] == rule
            expected = own["label_rules"][rule]["overall"]["metrics"]
            assert row["metrics"] == {k: v for k, v in expected.items() if k in BOARD_COLUMNS}
            assert task["baselines"] == {k: v for k, v in own["label_rules"][rule]["baselines"].items()
                                         if k != ceiling_of(own["label_rules"][rule])[0]}
            if row["best"]:
                assert row["vs_best"] is None
                continue
            pair = peerbench.compare([best, run_dir])["pairs"][0]
            assert row["vs_best"] == {**pair["differences"]["balanced_accuracy"], "n_papers": 95 if
                                      task["task"] == "peerread95" else 78, "resamples": 200,
                                      "mcnemar_p": pair["mcnemar"]["p_value"]}
    accept = next(r for r in data["tasks"][0]["rows"] if r["model"] == "accept")
    assert accept["metrics"]["f1"]["value"] == pytest.approx(160 / 175)  # 80 of 95 positive
    assert data["tasks"][0]["baselines"]["always-accept"]["f1"] == pytest.approx(160 / 175)
    assert f"leaderboard: {folder / 'site' / 'board.html'}" in stderr
    assert "peerread95: 3 models, best by balanced_accuracy: " in stderr


def test_the_human_ceiling_is_shown_where_scoring_has_one(board):
    folder, data, _ = board
    page = (folder / "site" / "board.html").read_text()
    for task in data["tasks"]:
        metrics = json.loads((folder / "sweep" / task["rows"][0]["name"] / "metrics.json").read_text())
        _, ceiling = ceiling_of(metrics["label_rules"][task["label_rule"]])
        assert task["human_ceiling"] == ceiling
    shown = page.count('class="reference ceiling first-reference"><td>human ceiling<span')
    missing = page.count("none in metrics.json for this task and label rule")
    assert shown == sum(t["human_ceiling"] is not None for t in data["tasks"]) and shown + missing == len(TASKS)


def test_the_review_measures_stand_beside_each_model_with_the_human_ceiling(board):
    folder, data, _ = board
    page = (folder / "site" / "board.html").read_text()
    for task in data["tasks"]:
        for row in task["rows"]:
            own = peerbench.report(folder / "sweep" / row["name"])["review"]["overall"]["measures"]
            assert row["review"] == {k: v for k, v in own.items() if k in REVIEW_COLUMNS}
            assert {"structure_full", "similarity_rouge_l"} <= set(row["review"])  # always-accept cites nothing
            assert task["review_human_ceiling"]["similarity_rouge_l"] == own["similarity_rouge_l"]["human"]["value"]
        assert f'id="review-{task["task"]}"' in page
    assert page.count("leave one out, same papers") == len(TASKS)


def test_the_page_is_self_contained_with_one_row_per_model_and_links_to_each_run(board):
    folder, _, _ = board
    page = (folder / "site" / "board.html").read_text()
    assert "http://" not in page and "https://" not in page
    for task in TASKS:
        table = page.split(f'id="board-{task}"')[1].split("</table>")[0]
        assert table.count('<tr class="model') == len(MODELS) and table.count('<tr class="model best"') == 1
        assert table.count('class="reference baseline"') == 2
    assert page.count("data:image/png;base64,") == 2 * len(TASKS)  # accept rates + overlaid reliability
    links = re.findall(r'<a class="model-name" href="([^"]+)"', page)
    assert len(links) == len(MODELS) * len(TASKS)
    for link in links:
        run_page = (folder / "site" / link).read_text()
        assert 'id="metrics"' in run_page


def test_bad_requests_are_one_line(board, tmp_path, isolated_home):
    folder, _, _ = board
    env = cli_env(isolated_home)
    for args, message in (
        (["--png", str(tmp_path / "png"), "--html", str(tmp_path / "b.html")],
         f"{folder / 'sweep'}: a sweep folder makes a leaderboard page: give --html FILE (not --png)"),
        (["--html", str(tmp_path / "b.html"), "--rank-by", "auroc"],
         "--rank-by auroc: choose one of f1, accuracy, balanced_accuracy (the paired metrics)"),
    ):
        done = run_cli(["report", str(folder / "sweep"), *args], env)
        assert (done.returncode, done.stderr) == (2, f"Error: {message}\n")


@pytest.mark.fast
def test_failed_and_missing_runs_are_left_off_with_their_reason(tmp_path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "config.json").write_text("{}")
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [
        {"name": "ok", "task": "t"}, {"name": "broken", "task": "t", "error": "backend said no"},
        {"name": "gone", "task": "t"}]}))
    kept, left_off = sweep_runs(tmp_path)
    assert [run["name"] for run in kept] == ["ok"] and kept[0]["run_dir"] == tmp_path / "ok"
    assert left_off == [{"name": "broken", "why": "the run failed: backend said no"},
                        {"name": "gone", "why": f"no run directory at {tmp_path / 'gone'}"}]
    with pytest.raises(ConfigError) as caught:  # a run not answered yet cannot be scored: it is left off too
        build_leaderboard(tmp_path, html=tmp_path / "board.html")
    assert str(caught.value) == f"{tmp_path}: no run to put on a board (broken: the run failed: backend said no)"
    assert not (tmp_path / "board.html").exists()
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"sweep.json: not a sweep summary \("):
        sweep_runs(tmp_path)
    assert (pvalue(0.0, 200), pvalue(0.0312, 200)) == ("p<0.005", "p=0.031")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-logging=stderr",
         "--v=0", "--window-size=1280,1000"]
# Added to a copy of the page (the page itself runs no script): how far any element reaches past the
# window's right edge, and how many intervals (.ci) are broken over two lines.
LAYOUT_PROBE = """<script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  let overflow = 0, wrapped = 0;
  for (const el of document.body.querySelectorAll('*')) {
    overflow = Math.max(overflow, el.getBoundingClientRect().right - width);
  }
  for (const el of document.querySelectorAll('.ci')) {
    const range = document.createRange();
    range.selectNodeContents(el);
    if (new Set([...range.getClientRects()].map(r => Math.round(r.top))).size > 1) wrapped += 1;
  }
  document.body.setAttribute('data-layout', JSON.stringify({width, overflow: Math.ceil(overflow), wrapped}));
});
</script>"""


def chromium(args, tmp_path):
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def layout_at_1280(page, tmp_path):
    probe = page.with_name(f"{page.stem}-probe.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path).stdout
    probe.unlink()
    return json.loads(re.search(r"data-layout=\"([^\"]+)\"", dom).group(1).replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium package)")
def test_board_loads_in_headless_chromium_and_fits_1280_px(board, tmp_path):
    folder, data, _ = board
    page = folder / "site" / "board.html"
    dom = chromium(["--dump-dom", page.as_uri()], tmp_path)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console  # no console message at all, errors included
    for task in TASKS:
        table = dom.stdout.split(f'id="board-{task}"')[1].split("</table>")[0]
        assert table.count('<tr class="model') == len(MODELS)
    assert dom.stdout.count("<img ") == 2 * len(TASKS)
    shot = tmp_path / "board.png"
    chromium([f"--screenshot={shot}", page.as_uri()], tmp_path)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", header[16:20])[0] == 1280
    assert layout_at_1280(page, tmp_path) == {"width": 1280, "overflow": 0, "wrapped": 0}
    run_page = folder / "site" / "board-runs" / f"peerread95__{data['tasks'][0]['rows'][0]['model']}.html"
    assert 'id="per-venue"' in run_page.read_text()  # the single-run page's per-venue table fits too
    assert layout_at_1280(run_page, tmp_path) == {"width": 1280, "overflow": 0, "wrapped": 0}


def test_runs_compare_refuses_to_pair_say_so(peerread_root, tmp_path):
    """A sweep's seeds change the task's generation settings, and compare pairs no such runs."""
    for seed in (1, 2):
        peerbench.run("peerread95", "baseline", "always-accept", data_dir=peerread_root, generation={"seed": seed},
                      out=tmp_path / f"peerread95__accept__seed{seed}", resamples=10)
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [
        {"name": f"peerread95__accept__seed{seed}", "task": "peerread95"} for seed in (1, 2)]}))
    data = build_leaderboard(tmp_path, html=tmp_path / "board.html")
    rows = data["tasks"][0]["rows"]
    assert [row["model"] for row in rows] == ["accept__seed1", "accept__seed2"]
    assert rows[1]["vs_best"]["refused"].startswith("cannot compare ")
    assert "not paired: compare refuses these two runs" in (tmp_path / "board.html").read_text()


def test_an_incomplete_run_is_listed_but_never_crowned(peerread_root, tmp_path):
    """Ten papers answered right and the rest failed: a perfect score on 10 papers must not beat a
    complete run, nor lend the task its baselines and human ceiling."""
    reject = peerbench.run("peerread95", "baseline", "always-reject", data_dir=peerread_root,
                           out=tmp_path / "peerread95__reject", resamples=10)
    rule = "recommendation>=4"
    word = {True: "ACCEPTANCE", False: "REJECTION"}
    rows = [{"id": s["id"], "completion": f"I recommend this paper for {word[s['gold'][rule]]}." if i < 10 else None}
            for i, s in enumerate(reject.samples)]
    replay = tmp_path / "ten.jsonl"
    replay.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ten = peerbench.run("peerread95", "replay", str(replay), data_dir=peerread_root,
                        out=tmp_path / "peerread95__ten", resamples=10)
    assert ten.metrics["complete"] is False and ten.metrics["label_rules"][rule]["overall"]["metrics"][
        "balanced_accuracy"]["value"] == 1.0
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [
        {"name": name, "task": "peerread95"} for name in ("peerread95__ten", "peerread95__reject")]}))
    board = build_leaderboard(tmp_path, html=tmp_path / "board.html")["tasks"][0]
    assert [(row["model"], row["best"], row["complete"]) for row in board["rows"]] == [
        ("reject", True, True), ("ten", False, False)]
    assert board["baselines"] == {name: values for name, values in reject.metrics["label_rules"][rule][
        "baselines"].items() if name != ceiling_of(reject.metrics["label_rules"][rule])[0]}
