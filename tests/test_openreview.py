"""The OpenReview dataset through the real openreview-py clients (API v1 and v2), against
tests/openreview_server.py, which speaks each ICLR year's real shape."""

import json

import pytest
from conftest import cli_env, run_cli
from openreview_server import VENUE, OpenReviewServer, venue_of

import peerbench
from peerbench.datasets.openreview import OpenReview, judge, rating_of, shape_of
from peerbench.datasets.pdf_sections import pdf_sections
from peerbench.errors import DataError

V1_LOGIN_ENV = "OPENREVIEW_API_V2_URL"  # openreview.Client logs in at the v2 host, read from this for a local one


@pytest.fixture
def server_for(monkeypatch):
    """A server speaking the given years, with both API URLs pointed at it and no credentials set."""
    servers = []

    def start(*years, n_papers=13):
        server = OpenReviewServer(n_papers=n_papers, years=years).__enter__()
        servers.append(server)
        monkeypatch.setenv("PEERBENCH_OPENREVIEW_URL", server.url)
        monkeypatch.setenv("PEERBENCH_OPENREVIEW_V2_URL", server.url)
        monkeypatch.setenv("PEERBENCH_OPENREVIEW_MIN_INTERVAL", "0")
        for name in ("OPENREVIEW_USERNAME", "OPENREVIEW_PASSWORD", "OPENREVIEW_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def openreview_env(server_for):
    return server_for(2020)


def pull(*venues, limit=None, page_size=None):
    dataset = OpenReview()
    if page_size:
        dataset.page_size = page_size
    args = dataset.parse_args({"venues": list(venues), **({"limit": limit} if limit else {})}, "test")
    papers = dataset.load(args, progress=False)
    return dataset, papers


@pytest.mark.fast
def test_ratings_and_the_venues_peerbench_knows():
    assert [rating_of(v) for v in ("6: Weak Accept", "8: accept, good paper", 6, "10", "n/a", None, True)] == \
        [6.0, 8.0, 6.0, 10.0, None, None, None]
    assert [shape_of(venue_of(y)).api for y in range(2018, 2026)] == [1, 1, 1, 1, 1, 1, 2, 2]
    for venue, said in [("ICLR 2020", "is not an OpenReview venue id like ICLR.cc/2020/Conference"),
                        ("NeurIPS.cc/2023/Conference", "is not an OpenReview venue id"),
                        ("ICLR.cc/2017/Conference", "knows the OpenReview fields of ICLR 2018-2025 only"),
                        ("ICLR.cc/2026/Conference", "knows the OpenReview fields of ICLR 2018-2025 only")]:
        with pytest.raises(DataError, match=said):
            shape_of(venue)


@pytest.mark.fast
def test_a_reply_and_the_venueid_that_disagree_leave_the_paper_out():
    venue = venue_of(2024)
    note = {"content": {"venueid": {"value": venue}}, "details": {"directReplies": [
        {"invitations": [f"{venue}/Submission1/-/Decision"], "content": {"decision": {"value": "Reject"}}}]}}
    assert judge(note, shape_of(venue), venue).reason == "conflicting decisions"
    note["content"]["venueid"]["value"] = f"{venue}/Submission"  # under review: the reply alone decides
    assert judge(note, shape_of(venue), venue).accepted is False


# Per year, from the server's 13 papers: number 5 withdrawn, 11 desk rejected (2018: withdrawn too, one kept
# in the blind listing with withdrawal "Confirmed", one in -/Withdrawn_Submission); even numbers accepted;
# papers 1 and 2's official ratings; paper 4's decision as OpenReview writes it.
YEARS = {
    2018: ("2 withdrawn, 0 desk rejected", [5.0, 6.0, 8.0], [6.0, 8.0, 3.0], "Accept (Poster)"),
    2019: ("1 withdrawn, 1 desk rejected", [5.0, 6.0, 7.0], [6.0, 7.0, 4.0], "Accept (Poster)"),
    2020: ("1 withdrawn, 1 desk rejected", [3.0, 6.0, 8.0], [6.0, 8.0, 1.0], "Accept (Talk)"),
    2022: ("1 withdrawn, 1 desk rejected", [5.0, 6.0, 8.0], [6.0, 8.0, 3.0], "Accept (Oral)"),
    2023: ("1 withdrawn, 1 desk rejected", [5.0, 6.0, 8.0], [6.0, 8.0, 3.0], "Accept: notable-top-5%"),
    2024: ("1 withdrawn, 1 desk rejected", [5.0, 6.0, 8.0], [6.0, 8.0, 3.0], "Accept (oral)"),
    2025: ("1 withdrawn, 1 desk rejected", [5.0, 6.0, 8.0], [6.0, 8.0, 3.0], "Accept (Oral)"),
}


@pytest.mark.parametrize("year", sorted(YEARS))
def test_each_year_reads_its_decision_ratings_and_exclusions_where_they_are(server_for, year):
    server_for(year)
    excluded, ratings_1, ratings_2, decision_4 = YEARS[year]
    dataset, papers = pull(venue_of(year))
    assert dataset.describe_pull(papers)[0] == (
        f"{venue_of(year)}: 11 papers with a decision of 13 submissions ({excluded}, 0 without a decision, "
        "0 without a PDF left out)")
    by_number = {p.meta["number"]: p for p in papers}
    assert sorted(by_number) == [1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13]
    assert sorted(n for n, p in by_number.items() if p.accepted) == [2, 4, 6, 8, 10, 12]
    assert by_number[1].recommendations == ratings_1 and by_number[1].meta["decision"] == "Reject"
    assert by_number[4].meta["decision"] == decision_4 and by_number[4].venue == f"iclr_{year}"
    assert by_number[2].recommendations == ratings_2
    third = by_number[3].meta
    if year == 2018:
        assert third["decision"] == "Invite to Workshop Track" and by_number[3].accepted is False
    if year == 2025:  # no Decision reply: the venueid says rejected
        assert (third["decision"], third["decision_from"]) == (f"{venue_of(2025)}/Rejected_Submission", "venueid")
    text = json.dumps([[p.title, p.abstract, [[s.heading, s.text] for s in p.sections]] for p in papers])
    assert "DECISIONTEXT" not in text and "AUTHORCOMMENT" not in text and "secret text" not in text
    # the official reviews' text, from the year's own fields, kept for the review measures only
    assert all(p.meta["human_reviews"] == ["secret text"] * 3 for p in papers)
    # beside each, its reviewer's own rating and confidence (what a judge's grades are checked against)
    assert [r["recommendation"] for r in by_number[1].meta["human_review_ratings"]] == ratings_1
    assert all(r["confidence"] == 4.0 for p in papers for r in p.meta["human_review_ratings"])


def test_v2_pull_pages_sorted_and_resumes_after_a_failed_page(server_for):
    server = server_for(2024, n_papers=10)
    server.faults = {"/notes?Submission@4": [400]}  # a refusal the client does not retry: the pull stops
    with pytest.raises(DataError, match=r"OpenReview the listing ICLR.cc/2024/Conference/-/Submission at offset 4: "
                                        r"try again; rerun to resume"):
        pull(venue_of(2024), page_size=4)
    dataset, papers = pull(venue_of(2024), page_size=4)
    assert {k: v for k, v in server.hits.items() if k.startswith("/notes")} == {
        "/notes?Submission@0": 1, "/notes?Submission@4": 2, "/notes?Submission@8": 1}  # page 0 came from the cache
    assert all((q["sort"], q["details"], q["limit"]) == ("number:asc", "directReplies", "4") for q in server.requests)
    assert [p.meta["number"] for p in papers] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert dataset.counts[venue_of(2024)] == {"submissions": 10, "withdrawn": 1, "desk rejected": 0, "no decision": 0,
                                              "unrecognised decision": 0, "conflicting decisions": 0, "no pdf": 0, "unread ratings": 0,
                                              "papers": 9}
    _, first = pull(venue_of(2024), limit=3, page_size=4)
    assert [p.meta["number"] for p in first] == [1, 2, 3] and server.hits["/notes?Submission@0"] == 1


def test_limit_counts_the_v1_exclusion_listings_in_number_order(server_for):
    server = server_for(2022)
    dataset, papers = pull(venue_of(2022), limit=6, page_size=4)
    assert dataset.counts[venue_of(2022)]["submissions"] == 6 and dataset.counts[venue_of(2022)]["withdrawn"] == 1
    assert [p.meta["number"] for p in papers] == [1, 2, 3, 4, 6]
    assert server.hits["/notes?Blind_Submission@4"] == 1 and server.hits["/notes?Blind_Submission@8"] == 0


def test_a_cache_listed_another_way_is_refused_not_mixed(server_for, isolated_home):
    server_for(2020)
    pull(VENUE, limit=2, page_size=4)
    folder = isolated_home / "openreview" / "ICLR.cc_2020_Conference"
    with pytest.raises(DataError, match=r"withdrawn: the cached pages were listed as .*'page_size': 4.*this pull lists "
                                        r".*'page_size': 1000.*delete the venue's cached listings"):
        pull(VENUE)
    (folder / "pages" / "listing.json").unlink()  # what an older peerbench left: pages cut from an unsorted listing
    with pytest.raises(DataError, match=r"pages: cached pages without listing.json .*unsorted.*delete the venue's"):
        pull(VENUE, page_size=4)
    (folder / "pages" / "listing.json").write_text(json.dumps({"api": 1, "sort": "number:asc", "page_size": 4,
                                                               "invitation": f"{VENUE}/-/Blind_Submission"}))
    first = folder / "pages" / "offset-000000.json"
    first.write_text(json.dumps(json.loads(first.read_text())[::-1]))  # a page out of order: resuming would skip
    with pytest.raises(DataError, match=r"pages: the cached pages are not one listing in increasing number order"):
        pull(VENUE, page_size=4)


def test_an_empty_listing_is_an_error_and_is_never_cached(server_for, isolated_home):
    server = server_for(2020)
    for year, where in [(2021, "API v1 at .* lists no submissions under ICLR.cc/2021/Conference/-/Blind_Submission"),
                        (2024, "API v2 at .* lists no submissions under ICLR.cc/2024/Conference/-/Submission")]:
        with pytest.raises(DataError, match=where + r"; check the venue id, or set OPENREVIEW_USERNAME"):
            pull(venue_of(year))
        assert not list((isolated_home / "openreview").glob(f"ICLR.cc_{year}_Conference/pages/*.json"))
    server.add(2024, 3)
    assert [p.meta["number"] for p in pull(venue_of(2024))[1]] == [1, 2, 3]  # the rerun asked again


@pytest.mark.parametrize("year", [2020, 2024])
def test_anonymous_403_says_which_credentials_to_set(server_for, year, monkeypatch):
    server = server_for(year)
    server.anonymous_refused = True
    invitation = "Withdrawn_Submission" if year == 2020 else "Submission"  # v1 lists the exclusions first
    with pytest.raises(DataError) as info:
        pull(venue_of(year))
    assert str(info.value) == (
        f"OpenReview refused the listing ICLR.cc/{year}/Conference/-/{invitation} at offset 0 to an anonymous reader "
        "(HTTP 403: an HTML page, perhaps a challenge): set OPENREVIEW_USERNAME and OPENREVIEW_PASSWORD (or "
        "OPENREVIEW_TOKEN) and rerun to resume")
    monkeypatch.setenv("OPENREVIEW_TOKEN", server.token)
    assert len(pull(venue_of(year))[1]) == 11


def test_login_failures_and_mfa_are_one_line_without_the_password(server_for, monkeypatch):
    server = server_for(2024)
    server.anonymous_refused, server.account = True, ("reader@example.org", "s3cret-passw0rd")
    monkeypatch.setenv("OPENREVIEW_USERNAME", "reader@example.org")
    with pytest.raises(DataError, match="OPENREVIEW_PASSWORD is not set but OPENREVIEW_USERNAME is"):
        pull(venue_of(2024))
    monkeypatch.setenv("OPENREVIEW_PASSWORD", "wrong-passw0rd")
    with pytest.raises(DataError) as info:
        pull(venue_of(2024))
    assert str(info.value) == (f"OpenReview login as reader@example.org at {server.url} failed (Invalid username or "
                               "password): check OPENREVIEW_USERNAME and OPENREVIEW_PASSWORD")
    monkeypatch.setenv("OPENREVIEW_PASSWORD", "s3cret-passw0rd")
    server.mfa = True
    with pytest.raises(DataError, match=r"^OpenReview login as reader@example.org asks for a second factor \(MFA\).*"
                                        "set OPENREVIEW_TOKEN"):
        pull(venue_of(2024))
    server.mfa = False
    assert len(pull(venue_of(2024))[1]) == 11 and server.hits["/login"] == 3


def test_v1_login_refusal_through_the_cli_is_one_line(openreview_env, isolated_home):
    openreview_env.anonymous_refused, openreview_env.account = True, ("reader@example.org", "s3cret-passw0rd")
    env = cli_env(isolated_home, PEERBENCH_OPENREVIEW_URL=openreview_env.url, PEERBENCH_OPENREVIEW_MIN_INTERVAL="0",
                  OPENREVIEW_USERNAME="reader@example.org", OPENREVIEW_PASSWORD="wrong-passw0rd",
                  **{V1_LOGIN_ENV: openreview_env.url})
    env.pop("OPENREVIEW_TOKEN", None)
    refused = run_cli(["data", "pull", "openreview", "--venue", VENUE], env)
    assert (refused.returncode, refused.stderr) == (2, (
        f"Error: OpenReview login as reader@example.org at {openreview_env.url} failed (Invalid username or "
        "password): check OPENREVIEW_USERNAME and OPENREVIEW_PASSWORD\n"))
    env["OPENREVIEW_PASSWORD"] = "s3cret-passw0rd"
    done = run_cli(["data", "pull", "openreview", "--venue", VENUE], env)
    assert done.returncode == 0, done.stderr
    assert "s3cret-passw0rd" not in done.stdout + done.stderr


def test_pdf_sections_keep_the_body_and_drop_references():
    from openreview_server import make_pdf

    sections = pdf_sections(make_pdf("A title", 7), "test.pdf")
    assert [s.heading for s in sections] == ["1 INTRODUCTION", "2 METHOD", "3 EXPERIMENTS", "4 CONCLUSION"]
    assert "method 7" in sections[0].text and all("cited paper" not in s.text for s in sections)


def test_pull_with_faults_then_resume_fetches_nothing_twice(openreview_env, isolated_home):
    server = openreview_env
    server.faults = {"/notes?Blind_Submission@0": [429, 500]}
    broken = {"note004", "note008"}
    server.broken_pdfs = set(broken)
    with pytest.raises(DataError, match=r"OpenReview refused PDF of note00[48] to an anonymous reader.*rerun to resume"):
        pull(VENUE)
    assert server.hits["/notes?Blind_Submission@0"] == 3  # 429 and 500 were retried by the client
    server.broken_pdfs = set()
    _, papers = pull(VENUE)
    pdf_hits = {k.split("?")[1]: v for k, v in server.hits.items() if k.startswith("/pdf")}
    stopped_at = [note for note in broken if pdf_hits.get(note) == 2]
    assert len(stopped_at) == 1  # the pull stopped at the first refused PDF, which the rerun fetched again
    assert all(count == 1 for note, count in pdf_hits.items() if note not in stopped_at)  # nothing else twice
    assert {k: v for k, v in server.hits.items() if k.startswith("/notes")} == {
        "/notes?Blind_Submission@0": 3, "/notes?Withdrawn_Submission@0": 1, "/notes?Desk_Rejected_Submission@0": 1}
    assert len(papers) == 11


def test_data_pull_cli_and_a_task_run(openreview_env, tmp_path, isolated_home):
    env = cli_env(isolated_home, PEERBENCH_OPENREVIEW_URL=openreview_env.url, PEERBENCH_OPENREVIEW_MIN_INTERVAL="0")
    openreview_env.missing_pdfs = {"note003"}
    pulled = run_cli(["data", "pull", "openreview", "--venue", VENUE, "--limit", "12"], env)
    assert pulled.returncode == 0, pulled.stderr
    assert (f"{VENUE}: 9 papers with a decision of 12 submissions (1 withdrawn, 1 desk rejected, 0 without a "
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


def test_every_year_has_a_task_listed(isolated_home):
    listed = run_cli(["tasks"], cli_env(isolated_home)).stdout
    assert all(f"openreview-iclr{year}" in listed for year in range(2018, 2026))
    assert [peerbench.load_task(f"openreview-iclr{y}").dataset.args() for y in (2018, 2025)] == [
        {"venues": ["ICLR.cc/2018/Conference"]}, {"venues": ["ICLR.cc/2025/Conference"]}]


def test_data_info_and_validate_data_read_the_cache(openreview_env, isolated_home):
    env = cli_env(isolated_home, PEERBENCH_OPENREVIEW_URL=openreview_env.url, PEERBENCH_OPENREVIEW_MIN_INTERVAL="0")
    openreview_env.missing_pdfs = {"note003"}
    pulled = run_cli(["data", "pull", "openreview", "-s", f"venues={VENUE}"], env)
    root, folder = isolated_home / "openreview", isolated_home / "openreview" / VENUE.replace("/", "_")
    assert pulled.returncode == 0 and pulled.stdout.splitlines() == [
        f"{VENUE}: 10 papers with a decision of 13 submissions (1 withdrawn, 1 desk rejected, 0 without a decision, "
        "1 without a PDF left out)", f"10 papers cached in {root}"]
    rows = [r for r in json.loads(run_cli(["data", "info", "--json"], env).stdout)["datasets"]
            if r["dataset"] == "openreview"]
    files = [*folder.glob("*/*.json"), *folder.glob("pdfs/*.pdf")]
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
                                        f"{folder / 'pdfs' / 'stray.pdf'}: no submission with this id in {folder}'s "
                                        "listings"]


def test_a_review_whose_rating_cannot_be_read_is_counted_never_guessed():
    from peerbench.datasets.openreview_fields import judge, shape_of

    venue = "ICLR.cc/2020/Conference"
    prefix = "ICLR.cc/2020/Conference/Paper1/-/"
    note = {"content": {}, "details": {"directReplies": [
        {"invitation": prefix + "Official_Review", "content": {"rating": "N/A: see my comments"}},
        {"invitation": prefix + "Official_Review", "content": {"rating": "6: Weak Accept"}},
        {"invitation": prefix + "Decision", "content": {"decision": "Accept (Poster)"}}]}}
    verdict = judge(note, shape_of(venue), venue)
    assert (verdict.accepted, verdict.ratings, verdict.unread_ratings) == (True, (6.0,), 1)


def test_no_builtin_openreview_task_puts_review_text_into_a_prompt_or_the_grounding_texts(server_for):
    """The review texts kept for the review measures (marked "secret text") reach no rendered prompt
    of any built-in OpenReview task, nor the paper texts grounding looks specifics up in."""
    from peerbench.pipeline.plan import plan_run
    from peerbench.prompts import render
    from peerbench.registry import registries
    from peerbench.reporting.review_scoring import texts_of

    server_for(*range(2018, 2026), n_papers=4)
    tasks = [e.value for e in registries().tasks.entries() if e.value.dataset.name == "openreview"]
    assert len(tasks) >= 8
    for task in tasks:
        plan = plan_run(task.task, "baseline")
        papers = plan.dataset.load(plan.dataset_args, progress=False)
        assert papers and all("secret text" in p.meta["human_reviews"][0] for p in papers)
        for paper in papers:
            rendered = render(paper, task.prompt_template(), max_model_len=task.max_model_len, max_tokens=1400)
            assert "secret text" not in json.dumps(rendered.messages), (task.task, paper.key)
            assert "secret text" not in "".join(texts_of(paper, rendered.truncation))
