"""The review measures (structure, grounding, closeness to human reviews), with exact answers
computed here by hand: a replay file of hand-written reviews over hand-written PeerRead-shaped papers,
run and rescored through the CLI."""

import json
import random

import pytest
import yaml
from click.testing import CliRunner

from peerbench.cli import build_cli
from peerbench.metrics import grounding, similarity
from peerbench.metrics.review import ReviewInput
from peerbench.metrics.review_format import format_of_template, review_content
from peerbench.reference import card

SECTIONS = ("Summary", "Strengths", "Weaknesses", "Technical Soundness", "Clarity and Writing", "Significance",
            "Final Recommendation")
LEAK = "LEAKMARKER"


# ---------------------------------------------------------------- the format, from the task's own prompt

@pytest.mark.fast
def test_the_sections_and_bulleted_ones_are_read_from_the_reference_prompt():
    fmt = format_of_template(card()["system"], card()["user_template"])
    assert (fmt.kind, fmt.sections, fmt.listed) == ("markdown", SECTIONS, ("Strengths", "Weaknesses"))


@pytest.mark.fast
def test_a_plugin_template_brings_its_own_sections_and_a_json_form_its_fields():
    own = format_of_template("", "Review {body}\n\n### Pros\n* a pro\n\n### Cons\n\n### Verdict\n")
    assert (own.sections, own.listed) == (("Pros", "Cons", "Verdict"), ("Pros",))
    form = ('In <JSON>, provide the review in JSON format with the following fields in the order:\n'
            '- "Summary": A summary of the paper.\n- "Strengths": A list of strengths of the paper.\n'
            '- "Questions": A set of clarifying questions.\n- "Decision": Accept or Reject.\n')
    fmt = format_of_template("", form + "{body}")
    assert (fmt.kind, fmt.sections, fmt.listed) == ("json", ("Summary", "Strengths", "Questions", "Decision"),
                                                    ("Strengths", "Questions"))
    from peerbench.metrics.structure import structure_of

    review = 'THOUGHT: fine\n```json\n{"Summary": "s", "Strengths": ["a"], "Questions": [], "Decision": "Accept"}\n```'
    values = structure_of(ReviewInput("x", "v", review, fmt))
    assert values["structure_sections"] == 3 / 4  # Questions is empty
    assert (values["structure_one_decision"], values["structure_bullets"], values["structure_full"]) == (1, 0, 0)
    no_decision = format_of_template("", form.replace('- "Decision": Accept or Reject.\n', "") + "{body}")
    review = '{"Summary": "s", "Strengths": ["a"], "Questions": ["q?"]}'
    values = structure_of(ReviewInput("x", "v", review, no_decision))
    assert (values["structure_one_decision"], values["structure_full"]) == (None, 1)


# ---------------------------------------------------------------- grounding's matching rules

PAPER = ("Our ﬁne-tuned model reaches 84.20 % accuracy on the Penn Treebank (Table 2),\n"
         "about 1,000 sentences more than BiLSTM-CRF baselines in Fig. 3. We write\n"
         "the loss as in (4)\n4 Experiments\nWe use a recur-\nrent network with self‑attention layers.")


@pytest.mark.fast
@pytest.mark.parametrize("review, found", [
    ("accuracy of 84.2% is reported", True),            # trailing zero and the space before % do not matter
    ("it uses 1000 sentences", None),                   # a bare integer is a count, not a specific
    ("it adds 1000 tokens", True),                      # with a unit it is one, and 1,000 is 1000
    ("see table 2", True), ("as figure 3 shows", True),  # Fig. 3 in the paper is Figure 3
    ("in table 5", False), ("section 4 is thin", True),  # a numbered heading is section 4
    ("equation 4 is wrong", True), ("equation 7 is wrong", False),
    ('it says "a recurrent network with self-attention"', True),  # line-broken hyphen joined, dashes unified
    ("the penn treebank numbers", None),                 # lower case: not a named term, nothing to check
    ("the Penn Treebank numbers", True), ("beats the BiLSTM baseline", True),  # case folded
    ("beats the ResNet baseline", False), ("gets 12.5 points", False), ("Penn-Treebank", True),
    ("uses fine-tuned weights in a “Fine-Tuned Model”", True),  # ligature ﬁ -> fi; curly quotes (2 words: a term)
])
def test_each_specific_is_found_by_the_documented_rules(review, found):
    specifics = grounding.specifics(review)
    assert len(specifics) == (found is not None), specifics
    if found is None:
        return
    text = grounding.normalise(PAPER)
    assert grounding.found_in(specifics[0], PAPER, text) is found


# ---------------------------------------------------------------- ROUGE-L equals rouge-score's own

@pytest.mark.fast
def test_rouge_l_f1_equals_rouge_score_on_random_and_real_looking_texts():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rng = random.Random(3)
    words = "the a model data we propose results table 2 attention , . ( )".split()
    pairs = [(" ".join(rng.choice(words) for _ in range(rng.randint(0, 60))),
              " ".join(rng.choice(words) for _ in range(rng.randint(0, 60)))) for _ in range(200)]
    pairs.append(("The paper's BLEU rises 2.1 points (Table 3).", "BLEU rises by 2.1 points in table 3!"))
    for a, b in pairs:
        expected = scorer.score(b, a)["rougeL"].fmeasure
        assert similarity.rouge_l_f1(similarity.rouge_tokens(a), similarity.rouge_tokens(b)) == pytest.approx(
            expected, abs=1e-12)


# ---------------------------------------------------------------- an exact run through the CLI

HUMANS = {
    "901": ["the method is sound but the evaluation is narrow and lacks baselines",
            "clear writing and a useful idea though the experiments are small"],
    "902": ["the results look strong but the ablation is missing for the encoder",
            "an interesting paper with limited novelty over prior work"],
    "903": ["the paper is hard to follow and the claims are not supported",
            "the theory is neat but the empirical part needs more datasets"],
    "904": ["novel idea with careful experiments and honest discussion of limits",
            "the contribution is incremental and the writing could be tighter"],
}
SHORT_BODY = "we train a small network on the corpus and report 71.3 percent on the held out split."
LONG_TAIL = "in the appendix the final model reaches 88.4 percent on the hidden split."


def body(paper_id):
    if paper_id == "902":  # long: truncation cuts its end, where 88.4 is
        return " ".join(["the network is trained with plain gradient descent on the corpus."] * 120) + " " + LONG_TAIL
    return SHORT_BODY


def stored_humans(paper_id):
    """The human reviews as the files hold them: marked, except 904's (copied verbatim by its review)."""
    return [f"{text} {LEAK}" if paper_id != "904" else text for text in HUMANS[paper_id]]


def write_papers(root):
    for paper_id in HUMANS:
        reviews = {"title": f"paper {paper_id}", "abstract": "we study networks on a corpus.", "id": paper_id,
                   "conference": "acl_2017",
                   "reviews": [{"comments": text, "RECOMMENDATION": "4", "REVIEWER_CONFIDENCE": str(k + 2)}
                               for k, text in enumerate(stored_humans(paper_id))]}
        parsed = {"name": f"{paper_id}.pdf", "metadata": {"title": f"paper {paper_id}", "sections": [
            {"heading": "1 Introduction", "text": body(paper_id)}], "abstractText": "we study networks on a corpus."}}
        for rel, content in ((f"acl_2017/dev/reviews/{paper_id}.json", reviews),
                             (f"acl_2017/dev/parsed_pdfs/{paper_id}.pdf.json", parsed)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(json.dumps(content))


def review(parts, sections=SECTIONS):
    """A review with the given section bodies; bullets under Strengths and Weaknesses."""
    out = []
    for name in sections:
        if name == "Final Recommendation":
            out.append(f"## {name}\nI recommend this paper for ACCEPTANCE.")
            continue
        text = parts.get(name, "fine.")
        out.append(f"## {name}\n" + (f"- {text}" if name in ("Strengths", "Weaknesses") else text))
    return "\n\n".join(out)


REVIEWS = {
    # two sections missing; 71.3 percent is in the text the model was given
    "901": review({"Summary": "the paper reports 71.3 percent on the split."},
                  [s for s in SECTIONS if s not in ("Technical Soundness", "Significance")]),
    "902": review({"Summary": "the model reaches 88.4 percent."}),   # only in the cut part
    "903": review({"Summary": "the model reaches 42.7 percent."}),   # nowhere in the paper
    "904": f"## Summary\n{HUMANS['904'][0]}\n\n## Final Recommendation\nI recommend this paper for ACCEPTANCE.",
}


def content_of(paper_id):
    """The review's content as the measures compare it: every section body, decision line left out."""
    if paper_id == "904":
        return HUMANS["904"][0]
    names = SECTIONS if paper_id != "901" else [s for s in SECTIONS if s not in ("Technical Soundness",
                                                                                 "Significance")]
    parts = {"901": {"Summary": "the paper reports 71.3 percent on the split."},
             "902": {"Summary": "the model reaches 88.4 percent."},
             "903": {"Summary": "the model reaches 42.7 percent."}}[paper_id]
    return " ".join(parts.get(n, "fine.") for n in names if n != "Final Recommendation")


@pytest.fixture
def exact_run(tmp_path):
    root = tmp_path / "data"
    write_papers(root)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(yaml.safe_dump({
        "task": "tiny-reviews", "version": 1, "dataset": {"name": "peerread", "venues": ["acl_2017"], "splits": ["dev"]},
        "label_rule": "recommendation>=4", "report_label_rules": [], "max_model_len": 1000,
        "generation": {"max_tokens": 100}}))
    replay = tmp_path / "replay.jsonl"
    replay.write_text("\n".join(json.dumps({"id": f"acl_2017/dev/{k}", "completion": v}) for k, v in REVIEWS.items()))
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["run", "--backend", "replay", "--model", str(replay), "--task", "tiny-reviews",
                                         "--include-path", str(tasks), "--data-dir", str(root),
                                         "--out", str(tmp_path / "run"), "--resamples", "50"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run", root


def expected_similarity():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def f(a, b):
        return scorer.score(b, a)["rougeL"].fmeasure

    humans = {k: stored_humans(k) for k in HUMANS}
    model = [(f(content_of(k), h[0]) + f(content_of(k), h[1])) / 2 for k, h in humans.items()]
    human = [f(h[0], h[1]) for h in humans.values()]  # two reviews: each held out against the other
    return sum(model) / 4, sum(human) / 4


def check_exact(review):
    m = review["overall"]["measures"]
    assert (review["overall"]["n"], review["overall"]["n_with_human_reviews"], review["overall"]["n_with_paper"]) == (
        4, 4, 4)
    assert m["structure_sections"]["value"] == pytest.approx((5 / 7 + 1 + 1 + 2 / 7) / 4)
    assert m["structure_full"]["value"] == 0.5  # 902 and 903
    assert m["structure_in_order"]["value"] == 0.5
    assert m["structure_one_decision"]["value"] == 1.0
    assert m["structure_section:Technical Soundness"]["value"] == 0.5  # missing in 901 and 904
    assert m["grounding_specifics"]["value"] == 0.75  # one number each in 901-903, none in 904
    for name in ("grounding_in_given", "grounding_only_cut", "grounding_nowhere"):
        assert (m[name]["value"], m[name]["n"]) == (pytest.approx(1 / 3), 3)
    model, human = expected_similarity()
    rouge = m["similarity_rouge_l"]
    assert (rouge["value"], rouge["human"]["value"], rouge["n"]) == (pytest.approx(model), pytest.approx(human), 4)
    assert rouge["difference"]["value"] == pytest.approx(model - human)


def test_an_exact_run_scores_structure_grounding_and_similarity_by_hand(exact_run):
    run_dir, _ = exact_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    cut = {s["paper_id"]: s["truncation"]["cut_chars"] for s in samples}
    assert cut["902"] > len(LONG_TAIL) and cut["901"] == cut["903"] == 0  # the premise: 88.4 was cut away
    assert all(LEAK not in json.dumps(s) for s in samples)  # no human review text stored with a sample
    check_exact(metrics["review"])
    each = metrics["review"]["per_review"]
    assert [each[f"acl_2017/dev/{k}"].get("grounding_only_cut") for k in HUMANS] == [0.0, 1.0, 0.0, None]
    assert [each[f"acl_2017/dev/{k}"]["structure_sections"] for k in HUMANS] == [
        round(5 / 7, 6), 1.0, 1.0, round(2 / 7, 6)]


def test_a_run_made_before_review_measures_is_rescored_by_report_without_a_request(exact_run, monkeypatch):
    run_dir, root = exact_run
    config = json.loads((run_dir / "config.json").read_text())
    config["metrics"] = [n for n in config["metrics"] if n not in ("structure", "grounding", "similarity")]
    del config["data_dir"]  # not recorded before either: the papers are found through PEERBENCH_DATA
    (run_dir / "config.json").write_text(json.dumps(config))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["review"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir.parent / "replay.jsonl").unlink()  # nothing could be requested again
    monkeypatch.setenv("PEERBENCH_DATA", str(root))
    result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    check_exact(json.loads(result.output)["review"])
    shown = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--html", str(run_dir / "page.html")])
    assert "4 of 4 papers with two or more human reviews" in shown.output
    assert "contamination" in shown.output and "ungrounded" in shown.output
    page = (run_dir / "page.html").read_text()
    rouge = json.loads(result.output)["review"]["overall"]["measures"]["similarity_rouge_l"]
    assert 'id="review-measures"' in page and "4 of 4 papers with two or more human reviews" in page
    assert f'{rouge["value"]:.3f}' in page and f'{rouge["human"]["value"]:.3f}' in page


def test_without_the_papers_grounding_and_similarity_are_left_out_and_the_reason_said(exact_run):
    run_dir, root = exact_run  # the run's --data-dir gone, PEERBENCH_DATA unset, no download possible
    root.rename(root.with_name("moved"))
    result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--json"], env={
        "PEERBENCH_PEERREAD_URL": "http://127.0.0.1:9/"})
    review = json.loads(result.output)["review"]
    assert review["papers_note"].startswith("the papers could not be read back from dataset 'peerread'")
    assert review["overall"]["n_with_paper"] == review["overall"]["n_with_human_reviews"] == 0
    assert not any(n.startswith(("grounding_", "similarity_")) for n in review["overall"]["measures"])
    assert review["overall"]["measures"]["structure_full"]["value"] == 0.5


def test_compare_pairs_each_review_measure(exact_run, tmp_path, monkeypatch):
    run_dir, root = exact_run
    monkeypatch.setenv("PEERBENCH_DATA", str(root))
    other = tmp_path / "replay2.jsonl"
    changed = dict(REVIEWS, **{"901": REVIEWS["902"].replace("88.4", "71.3")})  # 901 now full, grounded
    other.write_text("\n".join(json.dumps({"id": f"acl_2017/dev/{k}", "completion": v}) for k, v in changed.items()))
    result = CliRunner().invoke(build_cli(), ["run", "--backend", "replay", "--model", str(other), "--task",
                                              "tiny-reviews", "--include-path", str(tmp_path / "tasks"),
                                              "--data-dir", str(root), "--out", str(tmp_path / "run2"),
                                              "--resamples", "50"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(build_cli(), ["compare", str(run_dir), str(tmp_path / "run2"), "--json"])
    assert result.exit_code == 0, result.output
    pair = json.loads(result.output)["review"]["pairs"][0]
    assert pair["structure_full"]["difference"] == pytest.approx(0.25)
    assert pair["structure_sections"]["difference"] == pytest.approx((1 - 5 / 7) / 4)
    assert pair["grounding_in_given"]["difference"] == 0.0  # 901's one number is in the given text both times


# ---------------------------------------------------------------- the copy, slot by slot, and the encoder

@pytest.mark.fast
def test_a_verbatim_copy_of_a_human_review_scores_that_humans_own_value_in_its_slot():
    humans = [similarity.rouge_tokens(h) for h in HUMANS["904"] + ["a third review of the same paper by one more person"]]
    slots = similarity.slots(humans[0], humans, similarity.rouge_l_f1)
    assert slots[0][0] == slots[0][1]  # standing in for human 1, the copy is compared with exactly its references
    assert slots[0][1] == pytest.approx((similarity.rouge_l_f1(humans[0], humans[1])
                                         + similarity.rouge_l_f1(humans[0], humans[2])) / 2)


def build_tiny_encoder(folder):
    """A sentence-transformers model made here: a random tiny BERT and a WordPiece tokenizer trained
    with ``tokenizers`` on the test's own texts (nothing downloaded)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    corpus = [h for pair in HUMANS.values() for h in pair] + [SHORT_BODY, LONG_TAIL]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    base = folder / "bert"
    fast.save_pretrained(base)
    import torch

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)).save_pretrained(base)
    word = Transformer(str(base), max_seq_length=128)
    SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension())]).save(str(folder / "encoder"))
    return folder / "encoder"


def test_the_embedding_similarity_uses_the_chosen_local_encoder_and_a_copy_scores_its_slot(tmp_path, exact_run,
                                                                                          monkeypatch):
    encoder = build_tiny_encoder(tmp_path)
    inputs = [ReviewInput(k, "acl_2017", REVIEWS[k], human_reviews=tuple(stored_humans(k))) for k in HUMANS]
    model, human = similarity.measure(inputs, {"encoder": str(encoder)})
    copy = model[3]["similarity_embedding"], human[3]["similarity_embedding"]
    assert copy[0] == pytest.approx((1 + copy[1]) / 2, abs=1e-5)  # itself (cosine 1) and the other human
    run_dir, root = exact_run
    monkeypatch.setenv("PEERBENCH_DATA", str(root))
    result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--json", "--encoder", str(encoder)])
    assert result.exit_code == 0, result.output
    review = json.loads(result.output)["review"]
    entry = review["overall"]["measures"]["similarity_embedding"]
    assert review["encoder"] == str(encoder) and entry["n"] == 4
    assert entry["value"] == pytest.approx(sum(v["similarity_embedding"] for v in model) / 4, abs=1e-5)


# ---------------------------------------------------------------- human review text never reaches a prompt

def test_no_builtin_peerread_task_puts_human_review_text_into_a_prompt_or_the_grounding_texts(peerread_root):
    from peerbench.pipeline.plan import plan_run
    from peerbench.prompts import render
    from peerbench.registry import registries
    from peerbench.reporting.review_scoring import texts_of

    tasks = [t for t in registries().tasks.entries() if t.value.dataset.name == "peerread"]
    assert len(tasks) >= 5
    for entry in tasks:
        plan = plan_run(entry.name, "baseline", data_dir=peerread_root)
        papers = plan.dataset.load(plan.dataset_args, progress=False)
        assert any(LEAK in h for p in papers for h in p.meta["human_reviews"])  # the marker is there to find
        template = plan.task.prompt_template()
        for paper in papers:
            rendered = render(paper, template, max_model_len=plan.task.max_model_len, max_tokens=1400)
            assert LEAK not in json.dumps(rendered.messages), (entry.name, paper.key)
            assert LEAK not in "".join(texts_of(paper, rendered.truncation))


def test_a_third_party_review_measure_is_scored_through_register_metrics(exact_run):
    import peerbench
    from peerbench import plugins, registry

    class Exclaims:
        """A plugin as a third party writes it: only ``peerbench`` names."""

        @peerbench.hookimpl
        def register_metrics(self, register):
            register(peerbench.ReviewMeasure(
                "exclaims", "exclamation marks per review",
                lambda inputs, options: [{"exclamations": float(item.review.count("!"))} for item in inputs]))

    run_dir, _ = exact_run
    plugins.load_plugins()
    plugins.pm.register(Exclaims(), name="exclaims-plugin")
    registry.reset()
    try:
        result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--json"])
        assert result.exit_code == 0, result.output
        measures = json.loads(result.output)["review"]["overall"]["measures"]
        assert (measures["exclamations"]["value"], measures["exclamations"]["n"]) == (0.0, 4)
        assert "structure_full" in measures
    finally:
        plugins.pm.unregister(name="exclaims-plugin")
        registry.reset()


def test_without_rouge_score_the_rest_is_measured_and_the_gap_said(exact_run, monkeypatch):
    run_dir, _ = exact_run
    monkeypatch.setattr(similarity, "_has_rouge", lambda: False)  # as where the review extra is not installed
    result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    review = json.loads(result.output)["review"]
    assert review["skipped"] == {"similarity": "rouge-score (for similarity_rouge_l) is not installed; "
                                               "run: pip install 'peerbench[review]'"}
    assert "similarity_rouge_l" not in review["overall"]["measures"] and "grounding_nowhere" in review["overall"][
        "measures"]
    shown = CliRunner().invoke(build_cli(), ["report", str(run_dir)])
    assert "similarity: not measured: rouge-score" in " ".join(shown.output.split())


def test_an_encoder_that_cannot_load_is_one_line_naming_the_flag(exact_run, tmp_path):
    run_dir, _ = exact_run
    result = CliRunner().invoke(build_cli(), ["report", str(run_dir), "--encoder", str(tmp_path / "no-such-model")],
                                env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: --encoder ") and len(result.output.strip().splitlines()) == 1
