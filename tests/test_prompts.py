import json
from pathlib import Path

import pytest

from peerbench.errors import ConfigError
from peerbench.prompts import CHAT_TEMPLATE_MARGIN, PromptTemplate, paper_body, render
from peerbench.records import Paper, Section
from peerbench.task import load_task

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

PAPER = Paper("7", "acl_2017", "Parsing with Tiny Trees", "We parse sentences with small trees.",
              [Section("1 Introduction", "Parsing matters.\n101\nTrees are small."), Section(None, "Untitled text.")],
              split="dev")

GOLDEN_USER = """Review the following paper.

Title: Parsing with Tiny Trees

Abstract: We parse sentences with small trees.

Paper content:
1 Introduction
Parsing matters.
Trees are small.

Untitled text.

Write your review with these sections, in this order:
## Summary
## Strengths
## Weaknesses
## Technical Soundness
## Clarity and Writing
## Significance
## Final Recommendation

End the review with exactly one of these two lines and nothing after it:
I recommend this paper for ACCEPTANCE.
I recommend this paper for REJECTION."""

GOLDEN_SYSTEM = ("You are an expert reviewer for a top-tier computer science and artificial intelligence conference. "
                 "Read the submitted paper carefully and write a rigorous, fair and constructive review. Judge the "
                 "paper on its technical soundness, novelty, clarity and significance, and end with a clear decision.")


CARD = Path(__file__).resolve().parents[2] / "shared" / "data" / "card" / "card.json"


@pytest.mark.parametrize("task_name", ["peerread95", "peerread-acl2017", "peerread-conll2016", "peerread-iclr2017",
                                       "openreview-iclr2020", "openreview-iclr2019-2021"])
def test_every_builtin_task_sends_the_published_prompt_byte_for_byte(task_name):
    """The messages for a fixture paper are [system, user_template.format(...)] of the shared card.json."""
    card = json.loads(CARD.read_text(encoding="utf-8"))
    body = "1 Introduction\nParsing matters.\nTrees are small.\n\nUntitled text."
    expected = [{"role": "system", "content": card["system"]},
                {"role": "user", "content": card["user_template"].format(title=PAPER.title, abstract=PAPER.abstract,
                                                                         body=body)}]
    task = load_task(task_name)
    rendered = render(PAPER, task.prompt_template(), max_model_len=task.max_model_len,
                      max_tokens=task.generation.max_tokens)
    assert rendered.messages == expected
    user = rendered.messages[1]["content"]
    assert user.endswith("Paper content:\n" + body + "\n")  # the template's trailing newline
    assert "\n    I recommend this paper for ACCEPTANCE.\n    I recommend this paper for REJECTION.\n\n---\n\n" in user
    assert task.parser == "reference" and task.unparsed == "wrong"
    assert task.generation.model_dump(exclude={"seed"}) == card["sampling"]


def test_the_packaged_card_is_the_shared_one_byte_for_byte():
    from peerbench.reference import CARD_PATH

    assert CARD_PATH.read_bytes() == CARD.read_bytes()


def test_format_templates_leave_braces_in_paper_text_alone_and_check_their_fields():
    paper = Paper("1", "v", "A {b} $title", "cost {x} ${body}", [Section("H", "f(x) = {y} {{z}}")])
    user = render(paper, PromptTemplate.resolve("reference"), max_model_len=12288, max_tokens=10).messages[1]["content"]
    assert "Title: A {b} $title\nAbstract: cost {x} ${body}\n" in user and "f(x) = {y} {{z}}" in user
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['author'\]"):
        PromptTemplate.resolve(None, "sys", "Title {title} {author} {body}")
    with pytest.raises(ConfigError, match="must contain {body}"):
        PromptTemplate.resolve(None, "sys", "Title {title}")
    with pytest.raises(ConfigError, match="write literal braces as {{ and }}"):
        PromptTemplate.resolve(None, "sys", "Title {title {body}")
    dollar = PromptTemplate.resolve(None, "sys", "T ${title} {literal} ${body}", "dollar")
    assert dollar.messages(paper, "B")[1]["content"] == "T A {b} $title {literal} B"


def test_rendered_prompt_is_the_reviewer_template_character_for_character():
    rendered = render(PAPER, PromptTemplate.resolve("reviewer-v1"), max_model_len=12288, max_tokens=1400)
    assert rendered.messages == [{"role": "system", "content": GOLDEN_SYSTEM}, {"role": "user", "content": GOLDEN_USER}]
    assert rendered.truncation == {"method": "chars", "char_budget": rendered.truncation["char_budget"], "cut_chars": 0}


def test_braces_and_dollars_in_paper_text_are_left_alone():
    paper = Paper("1", "v", "A {b} $title", "cost $x ${body}", [Section("H", "f(x) = {y}")])
    user = render(paper, PromptTemplate.resolve("reviewer-v1"), max_model_len=12288,
                  max_tokens=10).messages[1]["content"]
    assert "Title: A {b} $title" in user and "Abstract: cost $x ${body}" in user and "f(x) = {y}" in user


def words(messages):
    return sum(len(m["content"].split()) for m in messages)


def test_token_truncation_fits_the_context_exactly():
    long = Paper("1", "v", "T", "A", [Section("Body", " ".join(f"w{i}" for i in range(5000)))])
    rendered = render(long, PromptTemplate.resolve(), max_model_len=2000, max_tokens=500, count_tokens=words)
    budget = 2000 - 500 - CHAT_TEMPLATE_MARGIN
    assert words(rendered.messages) <= budget
    assert rendered.truncation["method"] == "tokens" and rendered.truncation["cut_tokens"] > 0
    # one more body character would not fit: the search keeps the longest prefix
    kept = paper_body(long)[: len(paper_body(long)) - rendered.truncation["cut_chars"] + 2]
    assert words(PromptTemplate.resolve().messages(long, kept)) > budget


def test_char_truncation_without_a_tokenizer():
    long = Paper("1", "v", "T", "A", [Section("Body", "x" * 100_000)])
    rendered = render(long, PromptTemplate.resolve(), max_model_len=4000, max_tokens=1000)
    total = sum(len(m["content"]) for m in rendered.messages)
    assert rendered.truncation["cut_chars"] > 0 and total <= (4000 - 1000 - CHAT_TEMPLATE_MARGIN) * 3.5


def test_templates_are_checked():
    with pytest.raises(ConfigError, match="unknown field"):
        PromptTemplate.resolve(None, "sys", "Title ${title} ${author} ${body}", "dollar")
    with pytest.raises(ConfigError, match="must contain"):
        PromptTemplate.resolve(None, "sys", "Title ${title}", "dollar")
    with pytest.raises(ConfigError, match="unknown prompt 'nope'"):
        PromptTemplate.resolve("nope")


def test_a_context_too_small_for_the_prompt_itself_is_one_clear_error():
    long = Paper("1", "v", "T", "A", [Section("Body", " ".join(f"w{i}" for i in range(5000)))])
    with pytest.raises(ConfigError, match=r"^--max-model-len 300: the prompt without any of the paper already takes"):
        render(long, PromptTemplate.resolve(), max_model_len=300, max_tokens=200, count_tokens=words)


def test_the_counter_names_the_truncation_method():
    def counter(messages):
        return words(messages)

    counter.method = "server-tokenize"
    rendered = render(PAPER, PromptTemplate.resolve(), max_model_len=4000, max_tokens=100, count_tokens=counter)
    assert rendered.truncation["method"] == "server-tokenize"
