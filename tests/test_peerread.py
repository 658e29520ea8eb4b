import json

import pytest
from peerread_fixtures import LEAK, MANIFEST, write_paper

from peerbench.datasets.peerread import MANIFEST_PATH, PeerRead, PeerReadArgs, manifest, paper_from_files
from peerbench.errors import DataError
from peerbench.labels import DECISION, recommendation_at_least
from peerbench.prompts import PromptTemplate, render
from peerbench.task import load_task

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)


def load(root, **args):
    ds = PeerRead(root)
    return ds.load(PeerReadArgs(**args), progress=False)


def test_packaged_manifest_is_the_shared_one():
    assert json.loads(MANIFEST_PATH.read_text()) == json.loads(MANIFEST.read_text())


def test_peerread95_task_lists_exactly_the_95_papers(peerread_root):
    task = load_task("peerread95")
    ds = PeerRead(peerread_root)
    chosen = ds.selection(ds.parse_args(task.dataset.args(), "t"))
    expected = {(e["venue"], e["split"], e["id"]) for e in json.loads(MANIFEST.read_text())}
    assert len(chosen) == 95 and set(chosen) == expected
    # the same selection is known without any files (from the packaged facts)
    assert PeerRead().size(PeerRead().parse_args(task.dataset.args(), "t")) == 95


def test_label_rule_reproduces_every_manifest_label():
    from peerbench.records import Paper

    rule = recommendation_at_least(4)
    for entry in json.loads(MANIFEST.read_text()):
        n, mean = entry["n_reviews"], entry["mean_recommendation"]
        paper = Paper(entry["id"], entry["venue"], "", "", [], accepted=entry["accepted"],
                      recommendations=[mean] * n if n else [])
        assert rule.label(paper) == entry["label"], entry


def test_loaded_fixture_reproduces_the_published_counts(peerread_root):
    papers = load(peerread_root)
    assert len(papers) == 95
    gold = [recommendation_at_least(4).label(p) for p in papers]
    assert sum(gold) == 80
    by_venue = {}
    for p, g in zip(papers, gold):
        by_venue.setdefault(p.venue, []).append(g)
    assert {v: (sum(g), len(g)) for v, g in by_venue.items()} == {
        "acl_2017": (9, 14), "conll_2016": (1, 3), "iclr_2017": (70, 78)}
    decisions = [DECISION.label(p) for p in papers if p.venue == "iclr_2017"]
    assert sum(decisions) == 33 and all(DECISION.label(p) is None for p in papers if p.venue != "iclr_2017")


def test_iclr_quirks_only_official_reviews_once_each(peerread_root):
    paper = next(p for p in load(peerread_root, venues=["iclr_2017"], splits=["dev"]) if len(p.recommendations) == 3)
    raw = json.loads((peerread_root / paper.meta["reviews_path"]).read_text())
    scored = [r for r in raw["reviews"] if "RECOMMENDATION" in r]
    assert len(scored) > 3  # the duplicate and the scored public comment are in the file
    assert any(r["OTHER_KEYS"] == "ICLR 2017 pcs" for r in raw["reviews"])
    assert raw["id"] in ("", int(paper.id), paper.id)


def test_acl_string_scores_margin_numbers_and_null_headings(peerread_root):
    papers = load(peerread_root, venues=["acl_2017"], splits=["dev"])
    paper = papers[0]
    assert all(isinstance(s, float) for s in paper.recommendations)
    assert any(section.heading is None for section in paper.sections)
    from peerbench.prompts import paper_body

    body = paper_body(paper)
    assert not any(line.strip().isdigit() and len(line.strip()) == 3 for line in body.splitlines())


def test_no_review_score_or_decision_text_reaches_a_prompt(peerread_root):
    template = PromptTemplate.resolve("reviewer-v1")
    for paper in load(peerread_root):
        rendered = render(paper, template, max_model_len=12288, max_tokens=1400)
        text = json.dumps(rendered.messages)
        assert LEAK not in text, paper.key
        assert "committee" not in text.lower()


def test_a_copy_that_disagrees_with_the_manifest_names_the_paper(tmp_path):
    fact = next(e for e in manifest().values() if e["venue"] == "acl_2017" and e["n_reviews"] == 2)
    write_paper(tmp_path, "acl_2017", fact["split"], fact["id"], scores=[1, 1], accepted=None, positive=False, seed=1)
    with pytest.raises(DataError, match=f"acl_2017/{fact['split']}/{fact['id']}.*disagrees with peerread95.json"):
        load(tmp_path, venues=["acl_2017"], splits=[fact["split"]], ids=[fact["id"]])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(reviews="oops"), "field 'reviews' missing or not a list"),
    (lambda d: d["reviews"][0].update(RECOMMENDATION="high"), "reviews\\[0\\].RECOMMENDATION is not a number"),
    (lambda d: d.update(accepted="yes"), None),
])
def test_malformed_review_files_get_one_line_naming_file_and_field(tmp_path, mutate, message):
    write_paper(tmp_path, "acl_2017", "train", "8001", scores=[3], accepted=None, positive=False, seed=2)
    path = tmp_path / "acl_2017/train/reviews/8001.json"
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    if message is None:  # 'accepted' is ignored outside ICLR
        assert load(tmp_path, venues=["acl_2017"], splits=["train"])[0].accepted is None
        return
    with pytest.raises(DataError, match=message) as info:
        load(tmp_path, venues=["acl_2017"], splits=["train"])
    assert "acl_2017/train/reviews/8001.json" in str(info.value) and "\n" not in str(info.value)


def test_corrupt_json_in_a_local_copy(tmp_path):
    write_paper(tmp_path, "acl_2017", "train", "8002", scores=[3], accepted=None, positive=False, seed=2)
    (tmp_path / "acl_2017/train/parsed_pdfs/8002.pdf.json").write_text('{"metadata": {"sect')
    with pytest.raises(DataError, match="parsed_pdfs/8002.pdf.json: not valid JSON"):
        load(tmp_path, venues=["acl_2017"], splits=["train"])


def test_ids_selection_and_unknown_ids(peerread_root):
    papers = load(peerread_root, venues=["acl_2017"], splits=["dev", "test"], ids=["37", "94"])
    assert [p.id for p in papers] == ["37", "94"]
    with pytest.raises(DataError, match="--ids: no such paper.*nope"):
        load(peerread_root, venues=["acl_2017"], ids=["nope"])


def test_paper_from_files_falls_back_to_parsed_pdf_title_and_abstract():
    paper = paper_from_files("acl_2017", "dev", "1", {"title": "", "reviews": []},
                             {"metadata": {"title": "T", "abstractText": "A", "sections": None}})
    assert (paper.title, paper.abstract, paper.sections) == ("T", "A", [])
