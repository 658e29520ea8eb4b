"""The AI Scientist's benchmark: its data (pull, --data-dir, the mirror variable), its prompt sent
byte for byte, its JSON parser, the import of its reviewer CSVs, and the figures they give, exact.

The fixture (tests/aiscientist_fixtures.py) is in the files' real schema; every figure below is
worked out by hand from its table of papers."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from aiscientist_fixtures import PAPERS, text_of, write_benchmark, write_reviews_csv
from conftest import FixtureServer, cli_env, run_cli
from openai_server import OpenAIChatServer

from peerbench import json_review
from peerbench.records import Decision

SHARED_PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "aiscientist" / "prompts.json"
PACKAGED_PROMPTS = Path(__file__).resolve().parents[1] / "src" / "peerbench" / "data" / "aiscientist_prompts.json"


@pytest.fixture
def bench(tmp_path) -> Path:
    return write_benchmark(tmp_path / "AI-Scientist")


def metric(metrics: dict, name: str, rule: str = "decision") -> float:
    return metrics["label_rules"][rule]["overall"]["metrics"][name]["value"]


# ---- the prompt strings and the parser ----

@pytest.mark.fast
def test_the_packaged_prompts_are_the_shared_ones_and_name_their_source():
    packaged = json.loads(PACKAGED_PROMPTS.read_text(encoding="utf-8"))
    assert packaged["source"]["commit"] == "9dffdc445c2596ffa871b5588377e9f12558febc"
    assert packaged["source"]["license"].startswith("Apache-2.0")
    if not SHARED_PROMPTS.is_file():
        pytest.skip("../shared/data/aiscientist/prompts.json is not beside this checkout")
    assert PACKAGED_PROMPTS.read_bytes() == SHARED_PROMPTS.read_bytes()


FENCED = 'THOUGHT:\nok\n\nREVIEW JSON:\n```json\n{"Overall": 7, "Decision": "Accept"}\n```\n'


@pytest.mark.fast
@pytest.mark.parametrize("text, decision, overall6, rating", [
    (FENCED, "ACCEPT", "ACCEPT", 7.0),
    # no fence: the first {...} that parses (non-greedy: a nested object never parses)
    ('Here: {"Overall": 5, "Decision": "Reject"} and {"x": 1}', "REJECT", "REJECT", 5.0),
    # the fenced blocks come first; an invalid one is passed over for the next that parses
    ('```json\n{"Overall": 9,}\n```\n```json\n{"Overall": 3, "Decision": "Reject"}\n```', "REJECT", "REJECT", 3.0),
    # with a fence, a {...} outside it is never looked at
    ('{"Overall": 8, "Decision": "Accept"}\n```json\nnot json\n```', "UNPARSED", "UNPARSED", None),
    # a raw newline inside a string: parsed on the second try, control characters removed
    ('```json\n{"Summary": "two\nlines", "Overall": 6, "Decision": "Accept"}\n```', "ACCEPT", "ACCEPT", 6.0),
    ('```json\n{"Overall": 6}\n```', "UNPARSED", "ACCEPT", 6.0),                    # no Decision
    ('```json\n{"Overall": 4, "Decision": "Weak Accept"}\n```', "UNPARSED", "REJECT", 4.0),
    ('```json\n{"Overall": 4, "Decision": "accept"}\n```', "UNPARSED", "REJECT", 4.0),  # their == "Accept"
    ('```json\n{"Overall": "6", "Decision": "Reject"}\n```', "REJECT", "UNPARSED", None),  # a string
    ('```json\n{"Overall": 11, "Decision": "Reject"}\n```', "REJECT", "UNPARSED", None),   # off the scale
    ('```json\n{"Overall": true, "Decision": "Reject"}\n```', "REJECT", "UNPARSED", None),  # a bool
    ('```json\n{"Overall": 5.5, "Decision": "Reject"}\n```', "REJECT", "REJECT", 5.5),
    ('```json\n[1, 2]\n```', "UNPARSED", "UNPARSED", None),   # JSON, but no fields
    ("I am done.", "UNPARSED", "UNPARSED", None),
    ("", "UNPARSED", "UNPARSED", None),
])
def test_the_json_parser_table(text, decision, overall6, rating):
    from peerbench.parsing import parse_decision
    from peerbench.ratings import read_rating

    assert parse_decision(text, "aiscientist-json") == Decision(decision)
    assert parse_decision(text, "aiscientist-json-overall6") == Decision(overall6)
    assert read_rating(text, (1, 10), "aiscientist-json") == rating


@pytest.mark.fast
def test_their_extraction_returns_what_theirs_returns():
    assert json_review.extract_json_between_markers('x ```json\n [1]\n``` y') == [1]
    assert json_review.extract_json_between_markers('{"a": "\x01b"}') == {"a": "b"}
    assert json_review.extract_json_between_markers("no json") is None


@pytest.mark.fast
def test_the_decision_word_is_found_where_the_parser_read_it():
    from peerbench.parsing import decision_match

    text = 'quoted "Decision": "Reject" first\n```json\n{"Decision": "Accept", "Overall": 7}\n```'
    match = decision_match(text, "aiscientist-json")
    assert match.group(1) == "Accept" and match.start(1) == text.index('"Accept"') + 1
    assert decision_match(text, "aiscientist-json-overall6") is None  # a number decides: no word


# ---- the data ----

def test_pull_fetches_the_files_resumes_and_names_the_mirror_variable(bench, isolated_home, tmp_path):
    server = FixtureServer(bench)  # serves <root>/<rel> at /data/<rel>
    try:
        env = cli_env(isolated_home, PEERBENCH_AISCIENTIST_URL=server.url + "/data", PEERBENCH_HTTP_BACKOFF="0.01")
        server.missing.add("review_iclr_bench/iclr_parsed/-a1.txt")
        first = run_cli(["data", "pull", "aiscientist"], env)
        assert first.returncode == 2
        error = first.stderr.strip().splitlines()[-1]  # after the progress bar, one line
        assert error.startswith("Error: review_iclr_bench/iclr_parsed/-a1.txt: HTTP 404")
        assert error.endswith("13 fetched files were kept, rerun to resume")
        server.missing.clear()
        second = run_cli(["data", "pull", "aiscientist"], env)
        assert second.returncode == 0, second.stderr
        cache = isolated_home / "aiscientist" / "9dffdc445c2596ffa871b5588377e9f12558febc"
        assert second.stdout.startswith(f"1 files fetched; the AI Scientist's files are in {cache}")
        assert (cache / "review_iclr_bench" / "iclr_parsed" / "-a1.txt").read_bytes() == text_of("-a1").encode()
        assert server.hits["review_iclr_bench/ratings_subset.tsv"] == 1  # never fetched twice
        assert server.hits["ai_scientist/fewshot_examples/132_automated_relational.json"] == 1
        assert not (cache / "review_iclr_bench" / "iclr_parsed" / "m13.txt").exists()  # Unknown: left out
        third = run_cli(["data", "pull", "aiscientist"], env)
        assert third.stdout.startswith("0 files fetched")
    finally:
        server.close()
    dead = run_cli(["data", "pull", "aiscientist"], cli_env(tmp_path / "other-home",
                                                             PEERBENCH_AISCIENTIST_URL="http://127.0.0.1:9/x"))
    assert dead.returncode == 2 and dead.stderr.strip().count("\n") == 0
    assert "127.0.0.1: unreachable" in dead.stderr and "PEERBENCH_AISCIENTIST_URL" in dead.stderr


@pytest.mark.fast
def test_the_papers_as_their_script_reads_them(bench):
    from peerbench.datasets.aiscientist import AIScientist, AIScientistArgs

    papers = {p.id: p for p in AIScientist(bench).load(AIScientistArgs(), progress=False)}
    assert list(papers) == [p[0] for p in PAPERS]  # m13 (Unknown) left out
    assert [p.accepted for p in papers.values()] == [d.startswith("Accept") for _, d, *_ in PAPERS]
    assert papers["_b2"].recommendations == [6.0, 6.0, 5.0, 8.0] and papers["k11"].recommendations == [5.0]
    assert papers["_b2"].sections[0].text == "# SECOND PAPER\nWindows line ends\n\nend\n"  # open().read()
    assert papers["-a1"].key == "iclr_2022/-a1" and papers["-a1"].title == "A FIRST PAPER"


@pytest.mark.fast
@pytest.mark.parametrize("line, message", [
    ("x1\t5.0\t\t\t\t\t\t\tAccept", "column 'decision': 'Accept' is none of"),
    ("x1\tfive\t\t\t\t\t\t\tReject", "column '0': not a number: 'five'"),
    ("-a1\t5.0\t\t\t\t\t\t\tReject", "column 'paper_id': '-a1' repeats an earlier row"),
    ("x1\t5.0\tReject", "3 columns, expected 9"),
])
def test_a_broken_ratings_file_is_one_line_naming_file_line_and_column(bench, isolated_home, line, message):
    tsv = bench / "review_iclr_bench" / "ratings_subset.tsv"
    tsv.write_text(tsv.read_text() + line + "\n")
    result = run_cli(["validate-data", str(bench)], cli_env(isolated_home))
    assert result.returncode == 2
    assert f"{tsv}:15: {message}" in result.stdout


# ---- the import of a published CSV, figures by hand ----

def test_import_scores_their_csv_exactly_under_both_tasks(bench, isolated_home, tmp_path):
    csv_path = write_reviews_csv(tmp_path / "gpt-4o_temp_0_1_pages_all.csv")
    env = cli_env(isolated_home, COLUMNS="250")
    runs = {}
    for task in ("aiscientist-iclr2022", "aiscientist-iclr2022-overall6"):
        out = tmp_path / task
        result = run_cli(["import", "aiscientist", str(csv_path), "--task", task, "--data-dir", str(bench),
                          "--out", str(out), "--resamples", "50"], env)
        assert result.returncode == 0, result.stderr
        assert "published figures, not computed from these data" in result.stdout
        runs[task] = json.loads((out / "metrics.json").read_text())

    # Decision field. Gold accept: -a1 _b2 c3 d4 -l12. Said: -a1 Accept, _b2 Reject, c3 Reject, d4 "Weak Accept"
    # (UNPARSED: counted wrong, so a rejection of an accepted paper), -l12 Accept; f6 and g7 accepted rejects.
    decision = runs["aiscientist-iclr2022"]
    assert decision["label_rules"]["decision"]["overall"]["confusion"] == {"tp": 2, "fp": 2, "fn": 3, "tn": 5,
                                                                                "unparsed": 1, "ambiguous": 0}
    assert decision["decisions"]["UNPARSED"] == 1
    expected = {"accuracy": Fraction(7, 12), "precision": Fraction(1, 2), "recall": Fraction(2, 5),
                "specificity": Fraction(5, 7), "f1": Fraction(4, 9), "balanced_accuracy": Fraction(39, 70)}
    for name, value in expected.items():
        assert metric(decision, name) == pytest.approx(float(value), abs=1e-12), name

    # Overall >= 6: -a1 7, _b2 6, -l12 6.0 accept (TP 3); c3 5, d4 4 (FN 2); f6 6, g7 8 (FP), and i9 "n/a" and
    # k11 11 give no rating: UNPARSED, counted wrong, so accepted rejects (FP 4); e5 3, h8 2, j10 4 (TN 3).
    overall6 = runs["aiscientist-iclr2022-overall6"]
    assert overall6["label_rules"]["decision"]["overall"]["confusion"] == {"tp": 3, "fp": 4, "fn": 2, "tn": 3,
                                                                                "unparsed": 2, "ambiguous": 0}
    expected = {"accuracy": Fraction(1, 2), "precision": Fraction(3, 7), "recall": Fraction(3, 5),
                "specificity": Fraction(3, 7), "f1": Fraction(1, 2), "balanced_accuracy": Fraction(18, 35)}
    for name, value in expected.items():
        assert metric(overall6, name) == pytest.approx(float(value), abs=1e-12), name

    for metrics in runs.values():  # the same ratings under both tasks: 10 of 12 read (not i9, k11)
        overall = metrics["label_rules"]["decision"]["overall"]
        assert (overall["n_with_rating"], overall["n_model_rated"]) == (10, 10)
        assert metrics["ratings"]["given"] == 10 and metrics["ratings"]["asked"] == 12
        # accepted papers rated 7 6 5 4 6 against rejected 3 6 8 2 4: 16.5 of 25 pairs
        assert metric(metrics, "rating_auroc") == pytest.approx(0.66, abs=1e-12)
        # |Overall - the reviewers' mean| over the 10: 1/3 .25 2 5/3 2/3 5/3 5 1/3 .5 4/3 -> 13.75 / 10
        assert metric(metrics, "rating_mae") == pytest.approx(1.375, abs=1e-12)
        human = metrics["label_rules"]["decision"]["baselines"]["one human reviewer"]
        assert human["n"] == 10 and human["on_model_rated"] is True  # the papers the model rated, 2+ ratings
        cited = metrics["label_rules"]["decision"]["cited"]["humans, NeurIPS 2021 (cited)"]
        assert cited["metrics"] == {"balanced_accuracy": 0.66, "f1": 0.49, "specificity": 0.83, "recall": 0.48}
    from scipy.stats import spearmanr

    human_means = [22 / 3, 25 / 4, 7, 17 / 3, 11 / 3, 13 / 3, 3, 7 / 3, 4.5, 22 / 3]
    model = [7, 6, 5, 4, 3, 6, 8, 2, 4, 6]
    assert metric(decision, "rating_spearman") == pytest.approx(spearmanr(human_means, model).statistic, abs=1e-12)


def test_an_imported_run_is_an_ordinary_run_named_by_the_csv_content(bench, isolated_home, tmp_path):
    csv_path = write_reviews_csv(tmp_path / "reviews.csv")
    env = cli_env(isolated_home, COLUMNS="250")
    args = ["import", "aiscientist", str(csv_path), "--task", "aiscientist-iclr2022", "--data-dir", str(bench),
            "--resamples", "20"]
    first = run_cli(args, env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = Path(tmp_path / re.search(r"run directory: (\S+)", first.stdout).group(1))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backend"] == "replay" and len(config["file_sha256"]) == 64
    assert config["choices"]["parser"] == "aiscientist-json"
    report = run_cli(["report", str(run_dir), "--resamples", "20", "--html", str(tmp_path / "page.html")], env)
    assert report.returncode == 0, report.stderr
    assert "humans, NeurIPS 2021 (cited)" in report.stdout and "not computed from these data" in report.stdout
    page = (tmp_path / "page.html").read_text()
    assert "<em>0.490</em>" in page and "published figures, not computed from these data" in page
    csv_path.write_text(csv_path.read_text().replace("Weak Accept", "Accept"))  # another file: another run
    second = run_cli(args, env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert re.search(r"run directory: (\S+)", second.stdout).group(1) != str(run_dir.relative_to(tmp_path))
    assert json.loads((tmp_path / re.search(r"run directory: (\S+)", second.stdout).group(1) / "metrics.json")
                      .read_text())["decisions"]["UNPARSED"] == 0


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace(",Decision", ",Verdict", 1), "column(s) 'Decision' missing"),
    (lambda text: text + text.split("\n", 1)[1], "reviews.csv:26: column 'paper_id': '-a1' repeats line 2"),
    (lambda text: text + "n14,only two\n", "reviews.csv:26: 17 columns expected"),
])
def test_a_csv_that_is_not_theirs_is_one_line(bench, isolated_home, tmp_path, edit, message):
    csv_path = write_reviews_csv(tmp_path / "reviews.csv")
    csv_path.write_text(edit(csv_path.read_text()))
    result = run_cli(["import", "aiscientist", str(csv_path), "--task", "aiscientist-iclr2022", "--data-dir",
                      str(bench)], cli_env(isolated_home))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert message in result.stderr and str(csv_path) in result.stderr


# ---- a run against a server: their prompt, byte for byte ----

class JSONReviewer(OpenAIChatServer):
    """Answers each paper with the review of the fixture's table, as their reviewer formats it."""

    def completion(self, title, body):
        user = body["messages"][-1]["content"]
        paper_id = next(p for p in PAPERS if text_of(p[0]).replace("\r\n", "\n") in user)[0]
        _, _, _, overall, decision = next(p for p in PAPERS if p[0] == paper_id)
        review = {"Summary": "s", "Overall": json.loads(overall) if overall[0].isdigit() else overall,
                  "Decision": decision}
        text = f"THOUGHT:\nHmm.\n\nREVIEW JSON:\n```json\n{json.dumps(review)}\n```\n"
        return {"id": "x", "object": "chat.completion", "created": 0, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def test_a_run_sends_their_prompt_byte_for_byte_and_ids_may_begin_with_a_dash(bench, isolated_home, tmp_path):
    prompts = json.loads(PACKAGED_PROMPTS.read_text(encoding="utf-8"))
    with JSONReviewer(tokenize=False) as server:
        result = run_cli(["run", "--task", "aiscientist-iclr2022", "--backend", "openai", "--model", server.model,
                          "--base-url", server.base_url, "--data-dir", str(bench), "--ids", "-a1,_b2",
                          "--out", str(tmp_path / "run"), "--resamples", "20", "-q"],
                         cli_env(isolated_home, OPENAI_API_KEY="unused", COLUMNS="200"))
        assert result.returncode == 0, result.stderr
        bodies = sorted(server.bodies, key=lambda b: b["messages"][1]["content"])
    assert len(bodies) == 2
    for body, paper_id in zip(bodies, ["-a1", "_b2"]):
        text = (bench / "review_iclr_bench" / "iclr_parsed" / f"{paper_id}.txt").open().read()  # as their script
        user = prompts["neurips_form"] + f"""
Here is the paper you are asked to review:
```
{text}
```"""
        assert body["messages"] == [{"role": "system", "content": prompts["reviewer_system_prompt_neg"]},
                                    {"role": "user", "content": user}]
        assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.1, 4096, 0)
    samples = {json.loads(line)["paper_id"]: json.loads(line)
               for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()}
    assert {k: (s["decision"], s["rating"]) for k, s in samples.items()} == {"-a1": ("ACCEPT", 7.0),
                                                                             "_b2": ("REJECT", 6.0)}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["choices"]["body"].startswith("the paper's text as the dataset's file holds it")
    assert config["max_model_len"] == 128000 and samples["-a1"]["truncation"]["cut_chars"] == 0


def test_a_paper_longer_than_the_context_loses_its_end_and_the_sample_says_so(bench, isolated_home, tmp_path):
    long_text = "# LONG\n" + "filler words here\n" * 3000
    (bench / "review_iclr_bench" / "iclr_parsed" / "c3.txt").write_text(long_text)
    with JSONReviewer(tokenize=False) as server:
        server.completion = lambda title, body: JSONReviewer.completion(server, title, {"messages": [
            {"content": text_of("c3")}]}) if "# LONG" in body["messages"][-1]["content"] else None
        result = run_cli(["run", "--task", "aiscientist-iclr2022", "--backend", "openai", "--model", server.model,
                          "--base-url", server.base_url, "--data-dir", str(bench), "--ids", "c3",
                          "--max-model-len", "8000", "--out", str(tmp_path / "run"), "--resamples", "20", "-q"],
                         cli_env(isolated_home, OPENAI_API_KEY="unused"))
        assert result.returncode == 0, result.stderr
        system, user = (m["content"] for m in server.bodies[0]["messages"])
    sample = json.loads((tmp_path / "run" / "samples.jsonl").read_text())
    # characters: (8000 - 4096 - 32) x 3.5 = 13552 for the whole prompt, the system prompt and the form first
    frame = len(system) + len(user) - (len(long_text) - sample["truncation"]["cut_chars"])
    assert sample["truncation"]["method"] == "chars" and sample["truncation"]["char_budget"] == 13552 - frame
    assert sample["truncation"]["cut_chars"] == len(long_text) - (13552 - frame) > 0
    assert user.endswith(long_text[:13552 - frame] + "\n```")


def test_an_lm_eval_export_refuses_the_json_parser_in_one_line(bench, isolated_home, tmp_path):
    result = run_cli(["export", "lm-eval", "--task", "aiscientist-iclr2022", "--data-dir", str(bench), "--out",
                      str(tmp_path / "lm")], cli_env(isolated_home))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "parser 'aiscientist-json' reads a JSON review" in result.stderr and not (tmp_path / "lm").exists()


@pytest.mark.fast
def test_p_accept_is_read_at_the_decision_value_from_token_strings():
    import math

    from peerbench.backends.logprobs import TokenLogprob, decision_probability

    tokens = [TokenLogprob('```json\n{"Overall": 6, "Decision": "', 0.0), TokenLogprob("Acc", math.log(0.7),
              (("Acc", math.log(0.7)), ("Rej", math.log(0.2)), ("Borderline", math.log(0.1)))),
              TokenLogprob('ept"}\n```', 0.0)]
    assert decision_probability(tokens, parser="aiscientist-json").p_accept == pytest.approx(0.7 / 0.9)
    assert decision_probability(tokens, parser="aiscientist-json-overall6") is None


@pytest.mark.fast
def test_the_two_tasks_are_listed_and_a_citation_reaches_no_fingerprint():
    import peerbench

    assert {"aiscientist-iclr2022", "aiscientist-iclr2022-overall6"} <= set(peerbench.list_tasks())
    task = peerbench.load_task("aiscientist-iclr2022")
    assert (task.prompt, task.parser, task.max_model_len) == ("aiscientist", "aiscientist-json", 128000)
    assert task.fingerprint() == task.model_copy(update={"cited": None}).fingerprint()
    assert task.fingerprint() != task.model_copy(update={"parser": "aiscientist-json-overall6"}).fingerprint()


def test_a_paper_without_a_row_leaves_the_import_incomplete(bench, isolated_home, tmp_path):
    csv_path = write_reviews_csv(tmp_path / "reviews.csv")
    lines = csv_path.read_text().split("\n")
    csv_path.write_text("\n".join(lines[:1] + lines[3:]))  # the first review (-a1, two lines) dropped
    result = run_cli(["import", "aiscientist", str(csv_path), "--task", "aiscientist-iclr2022", "--data-dir",
                      str(bench), "--out", str(tmp_path / "run"), "--resamples", "20"], cli_env(isolated_home))
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("INCOMPLETE: 11/12 answered (1 failed")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["label_rules"]["decision"]["overall"]["n"] == 11


def test_always_accept_speaks_the_json_review(bench, isolated_home, tmp_path):
    result = run_cli(["run", "--task", "aiscientist-iclr2022-overall6", "--backend", "baseline", "--model",
                      "always-accept", "--data-dir", str(bench), "--out", str(tmp_path / "run"), "--resamples", "20"],
                     cli_env(isolated_home))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["decisions"] == {"ACCEPT": 12, "REJECT": 0, "AMBIGUOUS": 0, "UNPARSED": 0, "FAILED": 0}
    assert metric(metrics, "accuracy") == pytest.approx(5 / 12, abs=1e-12)  # 5 of the 12 were accepted
