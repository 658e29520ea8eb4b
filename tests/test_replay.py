"""The replay backend: a row is scored as one paper's review only when it can be for no other paper."""

import asyncio
import json
import math

import pytest
from peerread_fixtures import manifest

import peerbench
from peerbench.backends import RunContext
from peerbench.backends.replay import ReplayBackend
from peerbench.errors import ConfigError, PeerbenchError
from peerbench.records import ChatRequest, GenerationConfig, Paper

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

ACCEPT = "I recommend this paper for ACCEPTANCE."
REJECT = "I recommend this paper for REJECTION."
SHARED = {"355": ("acl_2017/test/355", "iclr_2017/dev/355"), "496": ("acl_2017/test/496", "iclr_2017/dev/496")}


def key(fact):
    return f"{fact['venue']}/{fact['split']}/{fact['id']}"


def published(style="key", id_field="id", completion_field="completion", venue_field="conference"):
    """Rows giving the published confusion counts TP 74, FP 12, FN 6, TN 3, one per manifest paper.

    style "key": ids are venue/split/id; "bare": bare PeerRead ids, the venue under ``venue_field``."""
    seen = {True: 0, False: 0}
    rows = []
    for fact in manifest():
        label = fact["label"]
        # The first 6 positives are rejected (FN), the first 3 negatives too (TN); the rest accepted.
        accept = seen[label] >= (6 if label else 3)
        seen[label] += 1
        row = {id_field: key(fact) if style == "key" else fact["id"],
               completion_field: f"Review of {key(fact)}.\n**{ACCEPT if accept else REJECT}**"}
        if style == "bare":
            row[venue_field] = fact["venue"]
        rows.append(row)
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def replay(path, tmp_path, task="peerread95", **options):
    return peerbench.run(task=task, backend="replay", model=str(path), data_dir=options.pop("data_dir"),
                         out=tmp_path / "run", resamples=100, backend_options=options)


def assert_published_numbers(result):
    overall = result.metrics["label_rules"]["recommendation>=4"]["overall"]
    confusion = overall["confusion"]
    assert (confusion["tp"], confusion["fp"], confusion["fn"], confusion["tn"]) == (74, 12, 6, 3)
    values = {k: round(v["value"], 3) for k, v in overall["metrics"].items()}
    assert (values["f1"], values["accuracy"], values["precision"], values["recall"]) == (0.892, 0.811, 0.860, 0.925)


def stored_samples(tmp_path):
    path = tmp_path / "run" / "samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def first_shared_line(rows, id_field="id"):
    return next(n for n, row in enumerate(rows, 1) if str(row[id_field]) in SHARED)


def test_bare_ids_shared_by_two_venues_are_refused_without_the_venue_field(peerread_root, tmp_path):
    rows = published("bare")
    path = write(tmp_path / "bare.jsonl", rows)
    line = first_shared_line(rows)
    shared = str(rows[line - 1]["id"])
    with pytest.raises(ConfigError) as caught:
        replay(path, tmp_path, data_dir=peerread_root)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: id {shared!r} could be ")
    assert all(k in message for k in SHARED[shared]) and "-o venue_field=NAME" in message
    assert stored_samples(tmp_path) == []  # refused at setup, before any generation


def test_bare_ids_with_the_venue_field_named_give_the_published_numbers(peerread_root, tmp_path):
    path = write(tmp_path / "bare.jsonl", published("bare"))
    result = replay(path, tmp_path, data_dir=peerread_root, venue_field="conference")
    assert_published_numbers(result)
    # each shared id went to its own paper: the review names the paper it was written for
    by_key = {s["id"]: s for s in result.samples}
    for keys in SHARED.values():
        for k in keys:
            assert by_key[k]["completion"].startswith(f"Review of {k}.")


def test_full_sample_keys_need_no_option(peerread_root, tmp_path):
    path = write(tmp_path / "keys.jsonl", published("key"))
    result = replay(path, tmp_path, data_dir=peerread_root)
    assert_published_numbers(result)
    assert all(s["completion"].startswith(f"Review of {s['id']}.") and not s.get("error") for s in result.samples)


def test_rows_for_papers_outside_the_selection_are_ignored(peerread_root, tmp_path):
    rows = published("key") + [{"id": "neurips_2099/test/1", "completion": ACCEPT},
                               {"id": "no-such-paper", "completion": ACCEPT}]
    result = replay(write(tmp_path / "extra.jsonl", rows), tmp_path, data_dir=peerread_root)
    assert_published_numbers(result)


def test_a_bare_id_is_used_when_the_selection_has_one_paper_with_it(peerread_root, tmp_path):
    # In the ICLR-only task 355 is unique, so the bare id is safe; the ACL rows match nothing.
    rows = [{"id": f["id"], "completion": f"Review of {key(f)}. {ACCEPT}"} for f in manifest()
            if f["venue"] != "acl_2017"]
    result = replay(write(tmp_path / "bare.jsonl", rows), tmp_path, task="peerread-iclr2017", data_dir=peerread_root)
    by_key = {s["id"]: s for s in result.samples}
    assert by_key["iclr_2017/dev/355"]["completion"] == f"Review of iclr_2017/dev/355. {ACCEPT}"
    assert len(result.samples) == 78 and not any(s.get("error") for s in result.samples)


@pytest.mark.parametrize("extra, first_line_of", [
    ({"id": "acl_2017/test/355", "completion": ACCEPT}, "acl_2017/test/355"),
    ({"id": 355, "conference": "acl_2017", "split": "test", "completion": ACCEPT}, "acl_2017/test/355"),
    ({"id": "37", "completion": ACCEPT}, "acl_2017/dev/37"),  # a bare id unique in the selection
])
def test_two_rows_for_one_paper_name_both_lines(peerread_root, tmp_path, extra, first_line_of):
    rows = published("key") + [extra]
    path = write(tmp_path / "dup.jsonl", rows)
    first = next(n for n, row in enumerate(rows, 1) if row["id"] == first_line_of)
    with pytest.raises(ConfigError) as caught:
        replay(path, tmp_path, data_dir=peerread_root, venue_field="conference")
    assert str(caught.value) == f"{path}: lines {first} and {len(rows)} are both for paper {first_line_of}; keep one"
    assert stored_samples(tmp_path) == []


def run_allowing_incomplete(path, tmp_path, **options):
    """A run with a failed paper; whether the runner reports it incomplete by raising is not ours to test."""
    try:
        replay(path, tmp_path, **options)
    except PeerbenchError as exc:
        if isinstance(exc, ConfigError):
            raise
    return {s["id"]: s for s in stored_samples(tmp_path)}


def test_a_paper_without_a_row_fails_and_never_gets_another_papers_review(peerread_root, tmp_path):
    rows = [row for row in published("key") if row["id"] != "acl_2017/test/355"]
    path = write(tmp_path / "missing.jsonl", rows)
    samples = run_allowing_incomplete(path, tmp_path, data_dir=peerread_root)
    missing = samples["acl_2017/test/355"]
    assert missing["error"] == (f"{path}: no row with id = 'acl_2017/test/355' "
                                f"(nor a venue/split/id that matches it)")
    assert missing["completion"] == ""
    assert samples["iclr_2017/dev/355"]["completion"].startswith("Review of iclr_2017/dev/355.")
    assert sum(1 for s in samples.values() if s.get("error")) == 1 and len(samples) == 95


def test_a_bare_id_does_not_stand_in_for_the_other_venues_missing_row(peerread_root, tmp_path):
    # The old bug: with acl_2017/test/355 missing, a bare "355" (unique in the file) was used for it.
    rows = [row for row in published("key") if row["id"] != "acl_2017/test/355"]
    for row in rows:
        if row["id"] == "iclr_2017/dev/355":
            row["id"] = "355"
    path = write(tmp_path / "bare355.jsonl", rows)
    line = next(n for n, row in enumerate(rows, 1) if row["id"] == "355")
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: id '355' could be acl_2017/test/355 and "
                                          rf"iclr_2017/dev/355; .*-o venue_field=NAME"):
        replay(path, tmp_path, data_dir=peerread_root)


def test_a_venue_field_picks_that_venues_paper_and_an_unknown_venue_matches_nothing(peerread_root, tmp_path):
    rows = [row for row in published("key") if row["id"] not in SHARED["355"]]
    rows += [{"id": "355", "venue": "iclr_2017", "completion": ACCEPT},
             {"id": "355", "venue": "acl_2099", "completion": REJECT}]
    samples = run_allowing_incomplete(write(tmp_path / "v.jsonl", rows), tmp_path, data_dir=peerread_root)
    assert samples["iclr_2017/dev/355"]["completion"] == ACCEPT
    assert samples["acl_2017/test/355"]["error"] and samples["acl_2017/test/355"]["completion"] == ""


def paper(venue, split, paper_id):
    return Paper(id=paper_id, venue=venue, title="t", abstract="a", sections=[], split=split)


def setup_backend(path, papers, **options):
    backend = ReplayBackend(str(path), **options)
    asyncio.run(backend.setup(RunContext(task=None, papers=papers)))
    return backend


def test_a_venue_without_a_split_that_fits_two_papers_asks_for_the_split(tmp_path):
    papers = [paper("iclr_2017", "dev", "7"), paper("iclr_2017", "test", "7")]
    path = write(tmp_path / "v.jsonl", [{"id": "7", "venue": "iclr_2017", "completion": ACCEPT}])
    with pytest.raises(ConfigError) as caught:
        setup_backend(path, papers)
    assert str(caught.value) == (f"{path}:1: id '7' could be iclr_2017/dev/7 and iclr_2017/test/7; give each row a "
                                 f"'split' field, or name the field that holds it with -o split_field=NAME, "
                                 f"or use venue/split/id keys")
    backend = setup_backend(write(tmp_path / "s.jsonl", [{"id": "7", "venue": "iclr_2017", "stage": "test",
                                                           "completion": ACCEPT}]), papers, split_field="stage")
    requests = [ChatRequest(p.key, [], GenerationConfig(), paper=p) for p in papers]
    dev, test = backend.generate_sync(requests)
    assert test.text == ACCEPT and dev.text == "" and dev.error


def test_a_foreign_file_with_its_own_field_names(peerread_root, tmp_path):
    rows = published("bare", id_field="paper", completion_field="review", venue_field="conf")
    for row, fact in zip(rows, manifest()):
        row["part"] = fact["split"]
        row["prob"] = 0.75 if ACCEPT in row["review"] else 0.25
    path = write(tmp_path / "foreign.jsonl", rows)
    result = replay(path, tmp_path, data_dir=peerread_root, id_field="paper", completion_field="review",
                    venue_field="conf", split_field="part", p_accept_field="prob")
    assert_published_numbers(result)
    by_key = {s["id"]: s for s in result.samples}
    for k in (*SHARED["355"], *SHARED["496"]):
        assert by_key[k]["completion"].startswith(f"Review of {k}.")
        assert by_key[k]["p_accept"] == (0.75 if ACCEPT in by_key[k]["completion"] else 0.25)


def test_a_completion_that_is_not_a_string_fails_that_paper_naming_file_and_line(peerread_root, tmp_path):
    rows = published("key")
    rows[4]["completion"] = None
    path = write(tmp_path / "null.jsonl", rows)
    samples = run_allowing_incomplete(path, tmp_path, data_dir=peerread_root)
    failed = samples[rows[4]["id"]]
    assert failed["error"] == (f"{path}:5: field 'completion' is not a string (got NoneType); "
                               f"name the completion's field with -o completion_field=NAME")
    assert failed["completion"] == ""
    assert sum(1 for s in samples.values() if s.get("error")) == 1


def bad_lines():
    good = json.dumps({"id": "acl_2017/dev/37", "completion": ACCEPT, "p": 0.5}).encode()

    def row(**fields):
        return json.dumps({"id": "acl_2017/dev/94", "completion": ACCEPT, **fields}).encode()

    return [
        (b'{"id": "acl_2017/dev/94", "completion": "caf\xe9"}', "not UTF-8 (byte 45 of the line)"),
        (b'{"id": "acl_2017/dev/94", ', "not valid JSON (Expecting property name enclosed in double quotes)"),
        (b'["acl_2017/dev/94", "review"]', "a row must be a JSON object, not list"),
        (json.dumps({"completion": ACCEPT}).encode(),
         "field 'id' missing, empty or not a string/integer (name the id's field with -o id_field=NAME)"),
        (row(p="high"), "field 'p' must be a number in [0, 1], got 'high'"),
        (row(p=5.0), "field 'p' must be a number in [0, 1], got 5.0"),
        (row(p=-0.1), "field 'p' must be a number in [0, 1], got -0.1"),
        (row(p=math.nan), "field 'p' must be a number in [0, 1], got nan"),
        (row(p=True), "field 'p' must be a number in [0, 1], got True"),
    ], good


@pytest.mark.parametrize("index", range(9))
def test_bad_files_are_refused_in_one_line_naming_file_and_line(peerread_root, tmp_path, index):
    cases, good = bad_lines()
    bad, reason = cases[index]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good + b"\n\n" + bad + b"\n")
    with pytest.raises(ConfigError) as caught:
        replay(path, tmp_path, data_dir=peerread_root, p_accept_field="p")
    assert str(caught.value) == f"{path}:3: {reason}"
    assert stored_samples(tmp_path) == []


@pytest.mark.parametrize("narrowing", [{"split": ["dev"]}, {"ids": ["355"]}, {"limit": 14}])
def test_narrowing_the_run_never_makes_a_shared_bare_id_unique(peerread_root, tmp_path, narrowing):
    # Only ACL rows, with bare ids: under --split dev (or --ids, --limit) the run holds one paper 355 or none,
    # but the task holds two, so the bare id could still mean either.
    rows = [{"id": f["id"], "completion": f"Review of {key(f)}. {ACCEPT}"} for f in manifest()
            if f["venue"] == "acl_2017"]
    path = write(tmp_path / "acl-bare.jsonl", rows)
    with pytest.raises(ConfigError, match=r"acl-bare.jsonl:\d+: id '355' could be acl_2017/test/355 and "
                                          r"iclr_2017/dev/355"):
        peerbench.run(task="peerread95", backend="replay", model=str(path), data_dir=peerread_root,
                      out=tmp_path / "run", resamples=10, **narrowing)
