"""The judge stage through the real CLI, against a loopback OpenAI-compatible judge whose answers
are fixed per request: it takes every "- " line of a review as one point, matches points with the
same words, and grades by rules below. Every figure is worked out here by hand."""

import json
import re

import pytest
import yaml
from click.testing import CliRunner
from openai_server import OpenAIChatServer

from peerbench.cli import build_cli

LEAK = "LEAKMARKER"
HUMANS = {  # paper -> (text, recommendation, confidence) of each human review
    "901": [("- narrow evaluation\n- missing baselines\n- unclear notation", 3, 5), ("- missing baselines\n- small dataset", 4, 3)],
    "902": [("- no ablation\n- weak novelty", 2, 2), ("- weak novelty\n- poor writing\n- no ablation", 4, 4)],
    "903": [("- claims unsupported", 1, 1), ("- hard to follow\n- claims unsupported\n(unreadable)", 3, 3)],
    "904": [("- tiny corpus", 3, 2), ("- tiny corpus\n- no code", 3, 4)],
    "905": [("- no error bars", 5, 5), ("- overclaims", 2, 1)],
}
MODEL = {"901": "- missing baselines\n- small dataset\n- bad figures", "902": "- no ablation\n- strong results claimed",
         "903": "- hard to follow", "904": "- no code", "905": "- no error bars\n- overclaims"}
DECISION = "\nI recommend this paper for ACCEPTANCE."


def points_of(review):
    return [line[2:].strip() for line in review.splitlines() if line.startswith("- ")]


def between(text, start="<<<\n", end="\n>>>"):
    return [part.split(end)[0] for part in text.split(start)[1:]]


def judge_reply(body, lax=False):
    """The scripted judge. Extraction: the "- " lines. Matching: points with the same words (lax:
    point i of A with point i of B, whatever they say). Aspects: specificity = the number of points
    (1-5), actionability 3, correctness 4, coverage 2; the review marked (unreadable) gets prose; the
    repeated request (seed 1) for the review that says "bad figures" grades specificity one higher."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    if system.startswith("You extract"):
        return json.dumps(points_of(between(user)[0]))
    if system.startswith("You compare"):
        a_text, b_text = user.split("List A:\n")[1].split("\n\nList B:\n")
        b_text = b_text.split("\n\nFind the pairs")[0]
        a = [re.sub(r"^\d+\. ", "", line) for line in a_text.splitlines()]
        b = [re.sub(r"^\d+\. ", "", line) for line in b_text.splitlines()]
        if lax:
            return json.dumps([[i + 1, i + 1] for i in range(min(len(a), len(b)))])
        return json.dumps([[i + 1, b.index(p) + 1] for i, p in enumerate(a) if p in b])
    review = between(user)[1]
    if "(unreadable)" in review:
        return "This review is fine, I would give it a good grade."
    bump = 1 if body.get("seed") == 1 and "bad figures" in review else 0
    return json.dumps({"specificity": min(5, max(1, len(points_of(review)))) + bump, "actionability": 3,
                       "correctness": 4, "coverage": 2})


def write_papers(root, leak=""):
    for paper_id, humans in HUMANS.items():
        reviews = {"title": f"paper {paper_id}", "abstract": "we study networks on a corpus.", "id": paper_id,
                   "conference": "acl_2017",
                   "reviews": [{"comments": text + leak, "RECOMMENDATION": str(rec), "REVIEWER_CONFIDENCE": str(conf)}
                               for text, rec, conf in humans]}
        parsed = {"name": f"{paper_id}.pdf", "metadata": {"title": f"paper {paper_id}", "sections": [
            {"heading": "1 Introduction", "text": f"we train a network for paper {paper_id}."}],
            "abstractText": "we study networks on a corpus."}}
        for rel, content in ((f"acl_2017/dev/reviews/{paper_id}.json", reviews),
                             (f"acl_2017/dev/parsed_pdfs/{paper_id}.pdf.json", parsed)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(json.dumps(content))


def write_task(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "tiny.yaml").write_text(yaml.safe_dump({
        "task": "tiny-judged", "version": 1, "dataset": {"name": "peerread", "venues": ["acl_2017"], "splits": ["dev"]},
        "label_rule": "recommendation>=4", "report_label_rules": [], "max_model_len": 2000,
        "generation": {"max_tokens": 100}}))
    return tasks


def invoke(args, **kwargs):
    result = CliRunner().invoke(build_cli(), args, **kwargs)
    return result


@pytest.fixture
def replay_run(tmp_path):
    root = tmp_path / "data"
    write_papers(root)
    replay = tmp_path / "replay.jsonl"
    replay.write_text("\n".join(json.dumps({"id": f"acl_2017/dev/{k}", "completion": v + DECISION})
                                for k, v in MODEL.items()))
    result = invoke(["run", "--backend", "replay", "--model", str(replay), "--task", "tiny-judged", "--include-path",
                     str(write_task(tmp_path)), "--data-dir", str(root), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output + result.stderr
    return tmp_path / "run", root


def judge_args(run_dir, root, server, *more):
    return ["judge", str(run_dir), "--backend", "openai", "--base-url", server.base_url, "--model", server.model,
            "-o", "max_retries=0", "-o", "tokenizer=chars", "--data-dir", str(root), "-q", "--resamples", "50", *more]


ENV = {"OPENAI_API_KEY": "unused", "COLUMNS": "220"}


def test_hit_rates_ceiling_shuffle_aspects_and_the_judges_own_checks_by_hand(replay_run):
    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=judge_reply) as server:
        result = invoke(judge_args(run_dir, root, server, "--limit", "3", "--agreement", "3", "--json"), env=ENV)
        assert result.exit_code == 0, result.output + result.stderr
        # 3 papers: 9 point lists + 9 rubric grades + 3 repeats; then per paper 2 model-vs-human, 1 human pair and
        # 2 shuffled matches
        assert len(server.bodies) == 9 + 9 + 3 + 3 * 5
        shown_first = [b["messages"][1]["content"].split("List A:\n")[1].split("\n")[0] for b in server.bodies
                       if b["messages"][0]["content"].startswith("You compare")]
    # position: the model's list is shown first in some match requests and second in others, its points reordered
    model_points = {p for k in ("901", "902", "903") for p in points_of(MODEL[k])}
    firsts = [re.sub(r"^\d+\. ", "", line) in model_points for line in shown_first]
    assert 0 < sum(firsts) < len(firsts)
    lines = {line["id"]: line for line in map(json.loads, next((run_dir / "judgements").glob("*/samples.jsonl"))
                                               .read_text().splitlines())}
    points_901 = lines["acl_2017/dev/901"]["points"]
    assert points_901["model"] == ["missing baselines", "small dataset", "bad figures"]
    # the matches, mapped back to each list's own numbering whatever order they were shown in
    assert points_901["model_vs_humans"] == [[[0], [1]], [[0, 1], [0, 1]]]
    assert points_901["between_humans"] == {"0-1": [[1], [0]]}
    metrics = json.loads(result.output)
    points = metrics["points"]["measures"]
    matched, raised = points["points_model_matched"], points["points_human_raised"]
    # 901: 2 of 3 model points raised by a human; 902: 1 of 2; 903: 1 of 1
    assert matched["value"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3) and matched["n"] == 3
    # each human's points the model raised: 901 (1/3, 2/2), 902 (1/2, 1/3), 903 (0/1, 1/2)
    assert raised["value"] == pytest.approx(((1 / 3 + 1) / 2 + (1 / 2 + 1 / 3) / 2 + (0 + 1 / 2) / 2) / 3)
    # one human against the other: 901 (1/3, 1/2), 902 (2/2, 2/3), 903 (1/1, 1/2), the same both ways
    ceiling = ((1 / 3 + 1 / 2) / 2 + (1 + 2 / 3) / 2 + (1 + 1 / 2) / 2) / 3
    assert matched["human"]["value"] == pytest.approx(ceiling) and raised["human"]["value"] == pytest.approx(ceiling)
    assert matched["difference"]["value"] == pytest.approx(13 / 18 - ceiling)
    assert matched["ci"][0] <= matched["value"] <= matched["ci"][1]
    assert points["points_per_review"]["value"] == 2 and points["points_per_review"]["human"]["value"] == pytest.approx(13 / 6)
    assert metrics["points"]["shuffle"]["points_model_matched_shuffled"]["value"] == 0.0
    assert metrics["flags"] == []
    aspects = metrics["aspects"]["measures"]
    assert aspects["aspect_specificity"]["value"] == 2.0  # 3, 2 and 1 points
    assert aspects["aspect_specificity"]["human"]["value"] == pytest.approx((2.5 + 2.5 + 1) / 3)  # 903's second unread
    assert aspects["aspect_mean"]["value"] == pytest.approx((3 + 2.75 + 2.5) / 3)
    assert aspects["aspect_coverage"]["value"] == 2.0 and aspects["aspect_correctness"]["human"]["value"] == 4.0
    lengths = [len((MODEL[k] + DECISION).split()) for k in ("901", "902", "903")]
    assert aspects["length_words"]["value"] == pytest.approx(sum(lengths) / 3)
    assert metrics["parse_failures"]["count"] == 1  # the prose answer: left out, not graded 0
    assert metrics["parse_failures"]["examples"][0]["request"] == "aspects of human review 2"
    agreement = metrics["aspects"]["agreement"]
    assert (agreement["n_papers"], agreement["exact"], agreement["mean_abs_difference"]) == (3, 11 / 12, 1 / 12)
    # the judge's mean grade of each readable human review: 901 (3, 2.75), 902 (2.75, 3), 903 (2.5)
    from scipy.stats import spearmanr

    grades = [3, 2.75, 2.75, 3, 2.5]
    against = metrics["aspects"]["against_humans"]
    assert against["confidence"] == {"n": 5, "rho": pytest.approx(spearmanr(grades, [5, 3, 2, 4, 1]).statistic)}
    assert against["recommendation"]["rho"] == pytest.approx(spearmanr(grades, [3, 4, 2, 4, 1]).statistic)
    assert against["decision"] == {"n": 0, "rho": None}  # ACL papers carry no decision
    assert metrics["complete"] and metrics["n_judged"] == 3

    shown = invoke(["report", str(run_dir)], env={**ENV, "PEERBENCH_DATA": str(root)})
    assert shown.exit_code == 0, shown.output + shown.stderr
    assert "judged points (hit rates) · 3 papers" in shown.output
    assert "self-agreement" in shown.output and "0.917 of grades equal" in shown.output
    assert "judge answers that could not be read: 1 of 36 requests" in shown.output
    for figure in ("0.722", "0.444", "0.667", "2.000", "2.750"):  # 13/18, 4/9, the ceiling 2/3, the aspects
        assert figure in shown.output
    from test_narrow_tables import assert_readable_at_80

    narrow = assert_readable_at_80(["report", str(run_dir)])  # every judged figure printed whole at 80 columns
    assert "judged aspects (1-5)" in narrow


def test_a_judge_that_matches_topics_is_flagged_by_the_shuffle_control(replay_run):
    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=lambda body: judge_reply(body, lax=True)) as server:
        result = invoke(judge_args(run_dir, root, server, "--limit", "3", "--rubric", "points"), env=ENV)
    assert result.exit_code == 0, result.output + result.stderr
    assert "FLAG: shuffle control" in result.output
    metrics = json.loads(next((run_dir / "judgements").glob("*/metrics.json")).read_text())
    # lax: min(len A, len B) points of A matched; 901's 3 points vs 902's humans (2, 3 points): all 3; 902's 2
    # vs 903's (1, 3): both; 903's 1 vs 901's: it
    assert metrics["points"]["shuffle"]["points_model_matched_shuffled"]["value"] == 1.0


def test_three_failed_judge_requests_make_it_incomplete_and_a_rerun_asks_exactly_those(replay_run):
    run_dir, root = replay_run
    failing = {3, 8, 15}  # the 3rd, 8th and 15th rubric requests to arrive get a 500 (no retries)
    script = lambda title, attempt: "500" if attempt in failing else None  # noqa: E731
    with OpenAIChatServer("judge-model", reply=judge_reply, script=script) as server:
        args = judge_args(run_dir, root, server, "--rubric", "aspects", "--agreement", "5")
        first = invoke(args, env=ENV)
        assert first.exit_code == 3, first.output + first.stderr
        assert len(server.bodies) == 20  # 5 papers x (model + 2 humans) + 5 repeats
        assert "INCOMPLETE: 3 judge requests failed" in first.output
        again = invoke(args, env=ENV)
        assert again.exit_code == 0, again.output + again.stderr
        assert len(server.bodies) == 23
        bodies = server.bodies
        assert len({json.dumps(b, sort_keys=True) for b in bodies[20:]} & {json.dumps(b, sort_keys=True)
                                                                          for b in bodies[:20]}) == 3
        third = invoke(args, env=ENV)  # nothing left to ask
        assert third.exit_code == 0 and len(server.bodies) == 23
    judged = next((run_dir / "judgements").iterdir())
    lines = [json.loads(line) for line in (judged / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 5 + len({line["id"] for line in lines if not line["complete"]})
    assert sum(len(line["failed"]) for line in lines) == 3


def test_resume_cache_and_a_changed_judge(replay_run, tmp_path):
    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=judge_reply) as server:
        args = judge_args(run_dir, root, server, "--limit", "3", "--agreement", "0", "--no-cache")
        assert invoke(args, env=ENV).exit_code == 0
        asked = len(server.bodies)
        judged = next((run_dir / "judgements").iterdir())
        samples = judged / "samples.jsonl"
        kept = samples.read_text().splitlines()[:1]
        samples.write_text("\n".join(kept) + "\n" + '{"id": "torn')  # killed while writing the second line
        answers = judged / "answers.jsonl"
        answers.write_text(answers.read_text() + '{"key": "torn')
        resumed = invoke(args, env=ENV)
        assert resumed.exit_code == 0, resumed.output + resumed.stderr
        assert len(server.bodies) == asked  # every answer was kept: nothing asked again, even without the cache
        assert len(samples.read_text().splitlines()) == 3
        cached = invoke(judge_args(run_dir, root, server, "--limit", "3", "--agreement", "0", "--out",
                                   str(tmp_path / "elsewhere")), env=ENV)
        assert cached.exit_code == 0
        assert len(server.bodies) == asked * 2  # --no-cache before: this one asks...
        again = invoke(judge_args(run_dir, root, server, "--limit", "3", "--agreement", "0", "--out",
                                  str(tmp_path / "elsewhere2")), env=ENV)
        assert again.exit_code == 0 and len(server.bodies) == asked * 2  # ...and the cache serves its repeats
        changed = invoke(judge_args(run_dir, root, server, "--limit", "3", "--agreement", "0", "--max-points", "5",
                                    "--no-cache"), env=ENV)
        assert changed.exit_code == 0
        assert len(list((run_dir / "judgements").iterdir())) == 2  # another judge: another judgement


def test_human_reviews_reach_the_judges_prompts_only(tmp_path):
    root = tmp_path / "data"
    write_papers(root, leak=f"\n{LEAK}")
    tasks = write_task(tmp_path)
    with OpenAIChatServer("reviewer") as reviewer, OpenAIChatServer("judge-model", reply=judge_reply) as judge:
        run = invoke(["run", "--backend", "openai", "--base-url", reviewer.base_url, "--model", "reviewer",
                      "-o", "tokenizer=chars", "--task", "tiny-judged", "--include-path", str(tasks), "--data-dir",
                      str(root), "--out", str(tmp_path / "run"), "-q"], env=ENV)
        assert run.exit_code == 0, run.output + run.stderr
        assert len(reviewer.bodies) == 5 and not any(LEAK in json.dumps(b) for b in reviewer.bodies)
        judged = invoke(judge_args(tmp_path / "run", root, judge, "--rubric", "points"), env=ENV)
        assert judged.exit_code == 0, judged.output + judged.stderr
        assert len(reviewer.bodies) == 5  # the reviewer is never asked again
    assert any(LEAK in json.dumps(b) for b in judge.bodies)
    assert not json.loads(next((tmp_path / "run" / "judgements").glob("*/metrics.json")).read_text())["flags"]
    with OpenAIChatServer("reviewer", reply=judge_reply) as itself:  # the reviewer's own model as its judge
        judged = invoke(judge_args(tmp_path / "run", root, itself, "--rubric", "aspects"), env=ENV)
    assert judged.exit_code == 0 and "FLAG: self-preference: the judge (reviewer) wrote the reviews" in judged.output


@pytest.mark.fast
def test_show_prompts_prints_the_packaged_files():
    from peerbench.judging import prompts

    result = invoke(["judge", "--show-prompts"])
    assert result.exit_code == 0
    for name in prompts.NAMES:
        system, user = prompts.prompt(name)
        assert system in result.output and user in result.output
        assert prompts.prompt_hashes()[name] in result.output


@pytest.mark.fast
def test_bad_judge_input_is_one_line_and_exit_2(tmp_path):
    result = invoke(["judge", str(tmp_path), "--backend", "openai", "--model", "m"])
    assert result.exit_code == 2 and "not a peerbench run directory" in result.stderr


def test_compare_html_and_the_python_api(replay_run, tmp_path):
    import peerbench

    run_dir, root = replay_run
    other = tmp_path / "replay2.jsonl"  # the second reviewer drops 901's unmatched point: 2 of 2 raised
    changed = dict(MODEL, **{"901": "- missing baselines\n- small dataset"})
    other.write_text("\n".join(json.dumps({"id": f"acl_2017/dev/{k}", "completion": v + DECISION})
                               for k, v in changed.items()))
    second = invoke(["run", "--backend", "replay", "--model", str(other), "--task", "tiny-judged", "--include-path",
                     str(tmp_path / "tasks"), "--data-dir", str(root), "--out", str(tmp_path / "run2"), "-q"])
    assert second.exit_code == 0
    with OpenAIChatServer("judge-model", reply=judge_reply) as server:
        options = {"base_url": server.base_url, "max_retries": 0, "tokenizer": "chars", "api_key_env": "NO_KEY_HERE"}
        results = [peerbench.judge(d, "openai", "judge-model", backend_options=options, rubric="points", data_dir=root,
                                   limit=3, resamples=50) for d in (run_dir, tmp_path / "run2")]
    assert results[0].judge_dir.name == results[1].judge_dir.name  # one judge, one id, whichever run it grades
    assert results[1].metrics["points"]["measures"]["points_model_matched"]["value"] == pytest.approx(
        (1 + 1 / 2 + 1) / 3)
    compared = invoke(["compare", str(run_dir), str(tmp_path / "run2"), "--json"], env={"PEERBENCH_DATA": str(root)})
    assert compared.exit_code == 0, compared.output
    judged = json.loads(compared.stdout)["judge"][results[0].judge_dir.name]
    assert judged["n_papers"] == 3
    assert judged["pairs"][0]["points_model_matched"]["difference"] == pytest.approx((1 - 2 / 3) / 3)
    page = tmp_path / "page.html"
    html = invoke(["report", str(run_dir), "--html", str(page)], env={"PEERBENCH_DATA": str(root)})
    assert html.exit_code == 0, html.output
    text = page.read_text()
    assert "Judged: openai:judge-model" in text and "model&#39;s points raised by some human review" in text


def test_a_sweep_names_a_judge_and_the_leaderboard_shows_its_figures(replay_run, tmp_path):
    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=judge_reply) as server:
        spec = tmp_path / "sweep.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "judged", "tasks": ["tiny-judged"], "include_paths": [str(tmp_path / "tasks")],
            "data_dir": str(root), "models": [{"name": "replayed", "backend": "replay",
                                                "model": str(tmp_path / "replay.jsonl")}],
            "judge": {"backend": "openai", "model": "judge-model", "rubric": "aspects", "agreement": 0,
                      "options": {"base_url": server.base_url, "max_retries": 0, "tokenizer": "chars"}}}))
        done = invoke(["sweep", str(spec), "--out", str(tmp_path / "s"), "-q", "--json"], env=ENV)
        assert done.exit_code == 0, done.output
        assert len(server.bodies) == 15  # 5 papers x (model + 2 humans)
        summary = json.loads(done.stdout)["runs"][0]
        assert summary["judge"]["complete"] and summary["judge"]["figures"]["aspect_coverage"] == 2.0
        again = invoke(["sweep", str(spec), "--out", str(tmp_path / "s"), "-q"], env=ENV)
        assert again.exit_code == 0 and len(server.bodies) == 15  # done, judgement included: skipped
    board = tmp_path / "board.html"
    shown = invoke(["report", str(tmp_path / "s"), "--html", str(board)], env={"PEERBENCH_DATA": str(root)})
    assert shown.exit_code == 0, shown.output
    assert 'id="judged-tiny-judged"' in board.read_text()


def test_a_judgement_killed_with_sigkill_resumes_and_asks_only_what_it_lacks(replay_run, isolated_home):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import cli_env

    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=judge_reply, latency=0.15) as server:
        args = judge_args(run_dir, root, server, "--limit", "3", "--agreement", "3", "--concurrency", "2")
        env = cli_env(isolated_home, OPENAI_API_KEY="unused")
        process = subprocess.Popen([sys.executable, "-m", "peerbench.cli", *args], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        judged = run_dir / "judgements"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answers = list(judged.glob("*/answers.jsonl"))
            if answers and len(answers[0].read_text().splitlines()) >= 6:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kept = [line for line in answers[0].read_text().splitlines(keepends=True) if line.endswith("\n")]
        before = len(server.bodies)
        assert 6 <= len(kept) < 36
        resumed = subprocess.run([sys.executable, "-m", "peerbench.cli", *args, "--no-cache"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert len(server.bodies) - before == 36 - len(kept)  # every stored answer kept; only the rest asked


def test_a_judge_whose_first_requests_all_fail_stops_and_a_replay_cannot_judge(replay_run, tmp_path):
    run_dir, root = replay_run
    with OpenAIChatServer("judge-model", reply=judge_reply, script=lambda title, attempt: "500") as server:
        result = invoke(judge_args(run_dir, root, server, "--rubric", "aspects", "--concurrency", "1"), env=ENV)
        assert result.exit_code == 2 and "every judge request failed so far (8)" in result.stderr
        assert len(server.bodies) == 8
    metrics = json.loads(next((run_dir / "judgements").glob("*/metrics.json")).read_text())
    assert not metrics["complete"] and metrics["n_complete_papers"] == 0
    replayed = invoke(["judge", str(run_dir), "--backend", "replay", "--model", str(tmp_path / "replay.jsonl"),
                       "--data-dir", str(root), "-q"])
    assert replayed.exit_code == 2 and "--backend replay: cannot judge" in replayed.stderr


@pytest.mark.fast
def test_a_bad_judge_setting_is_refused_before_any_request(replay_run):
    import peerbench

    run_dir, root = replay_run
    with pytest.raises(peerbench.ConfigError, match=r"^judge generation.top_p: "):
        peerbench.judge(run_dir, "openai", "m", generation={"top_p": 7}, data_dir=root)
    with pytest.raises(peerbench.ConfigError, match=r"^--rubric: one of points, aspects, all"):
        peerbench.judge(run_dir, "openai", "m", rubric="vibes", data_dir=root)
    assert not (run_dir / "judgements").exists()


def test_an_in_process_judge_whose_answers_are_no_json_grades_nothing(replay_run, tiny_model_dir):
    run_dir, root = replay_run  # the hf backend: batches, no harness retries, set up without a task
    result = invoke(["judge", str(run_dir), "--backend", "hf", "--model", str(tiny_model_dir), "--rubric", "aspects",
                     "--limit", "1", "--agreement", "0", "--max-tokens", "4", "--data-dir", str(root), "-q", "--json"],
                    env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert (metrics["n_requests"], metrics["parse_failures"]["count"], metrics["complete"]) == (3, 3, True)
    assert metrics["aspects"]["n_papers"] == 1 and metrics["aspects"]["measures"].get("aspect_mean") is None
    assert metrics["aspects"]["measures"]["length_words"]["n"] == 1  # the review's length stands, its grades do not


def test_a_failed_point_list_leaves_the_matches_on_it_to_the_rerun(replay_run):
    run_dir, root = replay_run
    # one request at a time: the 5th extraction to arrive is 902's first human review (901's three come first)
    script = lambda title, attempt: "500" if title.startswith("Below is a peer review") and attempt == 5 else None  # noqa: E731
    with OpenAIChatServer("judge-model", reply=judge_reply, script=script) as server:
        args = judge_args(run_dir, root, server, "--limit", "3", "--rubric", "points", "--concurrency", "1")
        first = invoke(args, env=ENV)
        assert first.exit_code == 3, first.output
        # 9 point lists (1 failed); then 901: 2 + 1 + 1 shuffled (902's second human only), 902: 1 + 0 + 2, 903: 5
        assert len(server.bodies) == 9 + 4 + 3 + 5
        again = invoke(args, env=ENV)
        assert again.exit_code == 0, again.output
        # the failed list, then what stands on it: 902's model vs it, 902's human pair, 901's shuffle against it
        assert len(server.bodies) == 21 + 4
    metrics = json.loads(next((run_dir / "judgements").glob("*/metrics.json")).read_text())
    assert metrics["points"]["measures"]["points_model_matched"]["value"] == pytest.approx(13 / 18)
    assert metrics["complete"] and metrics["points"]["shuffle"]["points_model_matched_shuffled"]["n"] == 3


def test_the_judges_key_reaches_no_file_and_no_output(replay_run):
    run_dir, root = replay_run
    key = "sk-judge-0123456789abcdef"

    def echoing(body):  # a server that echoes the key into its answers
        answer = judge_reply(body)
        return answer.replace('"]', f' {key}"]') if answer.startswith('["') else answer

    with OpenAIChatServer("judge-model", reply=echoing, api_key=key) as server:
        result = invoke(judge_args(run_dir, root, server, "--limit", "2", "--api-key-env", "MY_JUDGE_KEY"),
                        env={"MY_JUDGE_KEY": key, "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    assert key not in result.output
    written = [p for p in (run_dir / "judgements").rglob("*") if p.is_file()]
    assert len(written) >= 4 and not [p for p in written if key in p.read_text()]
    assert any("***" in p.read_text() for p in written if p.name == "answers.jsonl")


def test_an_interrupted_run_is_judged_on_its_answered_reviews(replay_run):
    run_dir, root = replay_run
    samples = run_dir / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    failed = json.loads(lines[0])
    samples.write_text("".join([json.dumps({**failed, "error": "HTTP 500", "decision": "FAILED",
                                            "completion": ""}) + "\n", *lines[1:]]))
    with OpenAIChatServer("judge-model", reply=judge_reply) as server:
        result = invoke(judge_args(run_dir, root, server, "--rubric", "aspects", "--agreement", "0"), env=ENV)
        assert result.exit_code == 0, result.output
        assert len(server.bodies) == 4 * 3  # the failed paper's review does not exist: nothing asked about it
    assert "the run itself is unfinished: 4 of its 5 papers have a review" in result.output
