"""The OpenReview dataset through the real openreview-py client, against tests/openreview_server.py."""

import json

import pytest
from conftest import cli_env, run_cli
from openreview_server import VENUE, OpenReviewServer

import peerbench
from peerbench.datasets.openreview import OpenReview, outcome, rating_of
from peerbench.datasets.pdf_sections import pdf_sections
from peerbench.errors import DataError


@pytest.fixture
def openreview_env(monkeypatch):
    with OpenReviewServer() as server:
        monkeypatch.setenv("PEERBENCH_OPENREVIEW_URL", server.url)
        monkeypatch.setenv("PEERBENCH_OPENREVIEW_MIN_INTERVAL", "0")
        monkeypatch.delenv("OPENREVIEW_USERNAME", raising=False)
        monkeypatch.delenv("OPENREVIEW_PASSWORD", raising=False)
        yield server


def test_labels_ratings_and_exclusions_from_direct_replies():
    assert rating_of("6: Marginally above acceptance threshold") == 6.0 and rating_of("n/a") is None
    note = {"details": {"directReplies": [
        {"invitation": f"{VENUE}/Paper1/-/Official_Review", "content": {"rating": "8: Top 50% of accepted papers"}},
        {"invitation": f"{VENUE}/Paper1/-/Official_Review", "content": {"rating": "3: Clear rejection"}},
        {"invitation": "ICLR.cc/2019/Conference/-/Paper1/Meta_Review", "content": {"recommendation": "Accept (Poster)"}}]}}
    assert outcome(note) == ("Accept (Poster)", [8.0, 3.0])


def test_pdf_sections_keep_the_body_and_drop_references():
    from openreview_server import make_pdf

    sections = pdf_sections(make_pdf("A title", 7), "test.pdf")
    assert [s.heading for s in sections] == ["1 INTRODUCTION", "2 METHOD", "3 EXPERIMENTS", "4 CONCLUSION"]
    assert "method 7" in sections[0].text and all("cited paper" not in s.text for s in sections)


def test_pull_with_faults_then_resume_fetches_nothing_twice(openreview_env, isolated_home):
    server = openreview_env
    server.faults = {"/notes?0": [429, 500]}
    broken = {"note004", "note008"}
    server.broken_pdfs = set(broken)
    dataset = OpenReview()
    args = dataset.parse_args({"venues": [VENUE]}, "test")
    with pytest.raises(DataError, match=r"OpenReview PDF of note00[48].*rerun to resume"):
        dataset.load(args, progress=False)
    assert server.hits["/notes?0"] == 3  # 429 and 500 were retried by the client
    server.broken_pdfs = set()
    papers = OpenReview().load(args, progress=False)
    pdf_hits = {k.split("?")[1]: v for k, v in server.hits.items() if k.startswith("/pdf")}
    stopped_at = [note for note in broken if pdf_hits.get(note) == 2]
    assert len(stopped_at) == 1  # the pull stopped at the first refused PDF, which the rerun fetched again
    assert all(count == 1 for note, count in pdf_hits.items() if note not in stopped_at)  # nothing else twice
    assert server.hits["/notes?0"] == 3  # the listing page came from the cache
    # 13 submissions: 2 withdrawn (numbers 5 and 11), none without a decision otherwise
    assert len(papers) == 11
    by_id = {p.id: p for p in papers}
    assert by_id["note002"].accepted is True and by_id["note001"].accepted is False
    assert by_id["note001"].recommendations == [2.0, 3.0, 4.0]
    text = json.dumps([[s.heading, s.text] for p in papers for s in p.sections]) + json.dumps(
        [p.title + p.abstract for p in papers])
    assert "DECISIONTEXT" not in text and "AUTHORCOMMENT" not in text and "secret text" not in text


def test_data_pull_cli_and_a_task_run(openreview_env, tmp_path, isolated_home):
    env = cli_env(isolated_home, PEERBENCH_OPENREVIEW_URL=openreview_env.url, PEERBENCH_OPENREVIEW_MIN_INTERVAL="0")
    openreview_env.missing_pdfs = {"note003"}
    pulled = run_cli(["data", "pull", "openreview", "--venue", VENUE, "--limit", "12"], env)
    assert pulled.returncode == 0, pulled.stderr
    assert (f"{VENUE}: 9 papers with a decision of 12 submissions (2 withdrawn, 0 desk rejected, 0 without a "
            "decision, 1 without a PDF left out)") in pulled.stdout
    result = peerbench.run("openreview-iclr2020", "baseline", "always-accept", out=tmp_path / "run", resamples=20)
    rules = result.metrics["label_rules"]
    assert rules["decision"]["overall"]["n"] == 10 and "recommendation>=6" in rules
    assert result.samples[0]["venue"] == "iclr_2020"
    bad = run_cli(["data", "pull", "openreview", "--venue", "ICLR 2020"], env)
    assert bad.returncode == 2 and "is not an OpenReview venue id like ICLR.cc/2020/Conference" in bad.stderr
    none = run_cli(["data", "pull", "openreview"], env)
    assert none.returncode == 2
    assert none.stderr == "Error: peerbench data pull openreview: dataset field 'venues': Field required\n"


def test_data_info_and_validate_data_read_the_cache(openreview_env, isolated_home):
    env = cli_env(isolated_home, PEERBENCH_OPENREVIEW_URL=openreview_env.url, PEERBENCH_OPENREVIEW_MIN_INTERVAL="0")
    openreview_env.missing_pdfs = {"note003"}
    pulled = run_cli(["data", "pull", "openreview", "-s", f"venues={VENUE}"], env)
    root, folder = isolated_home / "openreview", isolated_home / "openreview" / VENUE.replace("/", "_")
    assert pulled.returncode == 0 and pulled.stdout.splitlines() == [
        f"{VENUE}: 10 papers with a decision of 13 submissions (2 withdrawn, 0 desk rejected, 0 without a decision, "
        "1 without a PDF left out)", f"10 papers cached in {root}"]
    rows = [r for r in json.loads(run_cli(["data", "info", "--json"], env).stdout)["datasets"]
            if r["dataset"] == "openreview"]
    files = [*folder.glob("pages/*.json"), *folder.glob("pdfs/*.pdf")]
    assert rows == [{"dataset": "openreview", "what": VENUE, "where": str(folder),
                     "how_many": "13 submissions, 10 PDFs, 1 without a PDF",
                     "size_bytes": sum(p.stat().st_size for p in files)}]
    checked = run_cli(["validate-data", str(root)], env)
    assert (checked.returncode, checked.stdout) == (0, f"ok: 13 paper(s) checked in {root} (openreview)\n")
    page = folder / "pages" / "offset-000000.json"
    notes = json.loads(page.read_text())
    notes[1]["content"]["title"] = ""
    page.write_text(json.dumps(notes))
    pdf = folder / "pdfs" / "note002.pdf"
    pdf.write_bytes(b"<html>rate limited</html>")
    (folder / "pdfs" / "stray.pdf").write_bytes(b"%PDF-1.4")
    done = run_cli(["validate-data", str(folder)], env)
    assert (done.returncode, done.stderr) == (2, "3 problem(s) in 13 paper(s)\n")
    assert done.stdout.splitlines() == [f"{page}: field '1.content.title': missing or empty",
                                        f"{pdf}: not a PDF (it does not start with %PDF)",
                                        f"{folder / 'pdfs' / 'stray.pdf'}: no submission with this id in "
                                        f"{folder / 'pages'}"]
