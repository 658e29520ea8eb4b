"""Closeness of the model's review to the human reviews of the same paper, beside a human ceiling.

On a paper with two or more human reviews h_1..h_n: the model's value is the mean similarity of its
review to each h_j; the human's (the ceiling) is, for each h_i held out, its mean similarity to the
others h_j (j != i), averaged over i. This is leave one out, paired: standing in for h_i, the model
is compared with exactly the reviews h_i is compared with, so a verbatim copy of h_i scores h_i's
own value in that slot (:func:`slots`). Papers with fewer than two human reviews are left out of
both (and counted). Reviews are compared by content (:func:`review_content`): headings and decision
lines stripped on both sides.

``similarity_rouge_l``: ROUGE-L F1 with rouge-score's tokenizer (lower case, non-alphanumerics as
spaces, no stemming: ``RougeScorer(["rougeL"])``'s defaults); the longest common subsequence is
computed bit-parallel, equal to rouge-score's own table (tested against it) and fast enough for
every pair of a 95-paper run in well under a second. ``similarity_embedding``: cosine similarity of
sentence-transformers embeddings, only when an encoder is asked for (option ``encoder``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from peerbench.hookspecs import hookimpl
from peerbench.metrics.review import ReviewInput, ReviewMeasure, Values
from peerbench.metrics.review_format import review_content

from peerbench.metrics import DEFAULT_ENCODER  # noqa: F401  (documented here, defined where the CLI reads it)
MIN_HUMAN_REVIEWS = 2


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's own tokenization (``rouge_score.tokenize.tokenize``, no stemmer)."""
    from rouge_score import tokenize

    return tokenize.tokenize(text, None)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyrö): one big-integer
    step per token of the shorter sequence, on words as wide as the longer one, instead of an
    |a| x |b| table."""
    if len(a) > len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for position, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << position)
    row = 0
    for token in a:
        match = masks.get(token, 0)
        x = match | row
        row = x & ((x - ((row << 1) | 1)) ^ x)  # stays within x's bits: no mask needed
    return row.bit_count()


def rouge_l_f1(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 of two token lists, as rouge-score's ``_score_lcs`` (0 when either is empty)."""
    if not a or not b:
        return 0.0
    lcs = lcs_length(a, b)
    precision, recall = lcs / len(a), lcs / len(b)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def slots(model, humans: Sequence[Any], similarity: Callable[[Any, Any], float]) -> list[tuple[float, float]]:
    """(model, human) per held-out human i: the mean similarity to the other humans' reviews, of the
    model's review and of human i's."""
    out = []
    for i, held in enumerate(humans):
        others = [h for j, h in enumerate(humans) if j != i]
        out.append((sum(similarity(model, h) for h in others) / len(others),
                    sum(similarity(held, h) for h in others) / len(others)))
    return out


def _has_rouge() -> bool:
    import importlib.util

    return importlib.util.find_spec("rouge_score") is not None


def _usable(item: ReviewInput) -> bool:
    return item.human_reviews is not None and len(item.human_reviews) >= MIN_HUMAN_REVIEWS


def _paper_values(model, humans, similarity) -> tuple[float, float]:
    """The paper's (model, human) values: the slots' means, each pair's similarity computed once
    (both measures are symmetric)."""
    texts = [model, *humans]
    known: dict[tuple[int, int], float] = {}

    def once(i: int, j: int) -> float:
        key = (min(i, j), max(i, j))
        if key not in known:
            known[key] = similarity(texts[key[0]], texts[key[1]])
        return known[key]

    pairs = slots(0, range(1, len(texts)), once)
    return sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs)


@lru_cache(maxsize=2)
def load_encoder(name: str):
    """The sentence encoder, loaded once per process (a hub name or a local folder)."""
    from peerbench.errors import MissingDependency

    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency("sentence-transformers (for --encoder)", "review") from None
    try:
        return SentenceTransformer(name, device="cpu")
    except Exception as exc:  # a wrong name or folder, no network: one line naming the flag
        from peerbench.errors import ConfigError

        message = " ".join(str(exc).split())[:200]
        raise ConfigError(f"--encoder {name}: cannot load this sentence-transformers model ({message})") from None


def _embeddings(texts: list[str], encoder: str, batch_size: int = 32):
    """Unit-length embeddings of every text, in one batched call."""
    return load_encoder(encoder).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)


def _both(inputs: Sequence[ReviewInput], options: Mapping[str, Any]) -> tuple[list[Values], list[Values]]:
    model_out: list[Values] = [{} for _ in inputs]
    human_out: list[Values] = [{} for _ in inputs]
    usable = [i for i, item in enumerate(inputs) if _usable(item)]
    contents = {i: (review_content(inputs[i].review, inputs[i].format),
                    [review_content(h, None) for h in inputs[i].human_reviews or ()]) for i in usable}
    for i in usable if _has_rouge() else ():
        review, humans = contents[i]
        tokens = [rouge_tokens(text) for text in [review, *humans]]
        model_out[i]["similarity_rouge_l"], human_out[i]["similarity_rouge_l"] = _paper_values(
            tokens[0], tokens[1:], rouge_l_f1)
    encoder = options.get("encoder")
    if usable and not encoder and not _has_rouge():
        from peerbench.errors import MissingDependency

        raise MissingDependency("rouge-score (for similarity_rouge_l)", "review")
    if encoder and usable:
        texts = [text for i in usable for text in [contents[i][0], *contents[i][1]]]
        vectors = iter(_embeddings(texts, encoder))
        for i in usable:
            group = [next(vectors) for _ in range(1 + len(contents[i][1]))]
            model_out[i]["similarity_embedding"], human_out[i]["similarity_embedding"] = _paper_values(
                group[0], group[1:], lambda u, v: float(u @ v))
    return model_out, human_out


def measure(inputs: Sequence[ReviewInput], options: Mapping[str, Any]) -> tuple[list[Values], list[Values]]:
    """(the model's values, the human ceiling's values), one dict per review."""
    return _both(inputs, options)


SIMILARITY = ReviewMeasure(
    "similarity", "closeness of the review to the paper's human reviews (ROUGE-L F1; embedding cosine with "
                  "--encoder), beside one human against the others", measure, paired=True)


@hookimpl
def register_metrics(register):
    register(SIMILARITY)
