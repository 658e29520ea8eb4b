"""Two tokenizers trained here with ``tokenizers`` (nothing downloaded), and one scripted review
whose logprobs every backend's P(accept) must read alike.

- byte-level BPE (GPT-2, Llama 3, Qwen): a token decoded alone keeps its leading space (" REJ");
- SentencePiece style (Metaspace "▁": Llama 2, Gemma, Mistral): a token decoded alone loses it
  ("REJ"), which is how vLLM decodes each logprob token, so joined token strings run the words
  together ("forREJECTION").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CORPUS = [
    "## Summary", "## Final Recommendation", "I recommend this paper for ACCEPTANCE.",
    "I recommend this paper for REJECTION.", "I recommend this paper for a major revision.",
    "The template says: I recommend this paper for ACCEPTANCE or REJECTION.", "Results on R and RNN models.",
]
REVIEW = ("## Summary\nThe template says: I recommend this paper for ACCEPTANCE.\n\n"
          "## Final Recommendation\nI recommend this paper for {word}.")
KINDS = ("byte-level", "sentencepiece")


def train(kind: str, vocab_size: int = 400):
    """A small BPE tokenizer of the given kind, trained on CORPUS. At 400 the decision words are
    whole tokens; at 300 they are cut into pieces (byte-level: " " then "A" against " R")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    if kind == "byte-level":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        alphabet = ["\n"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|end|>"], initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    return tokenizer


def as_transformers(tokenizer):
    """The same tokenizer as transformers (and vLLM, which uses transformers') hands it out."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|end|>", pad_token="<|end|>")


@dataclass
class Scenario:
    """A review that quotes ACCEPTANCE, then decides ``word``; logprobs per generated position."""

    text: str
    ids: list[int]
    logprobs: list[dict[int, float]]  # token id -> logprob, the chosen token included
    pieces: list[str]  # each token decoded alone
    accept_id: int
    reject_id: int
    decision_index: int


def _covering(offsets, position: int) -> int:
    return next(i for i, (start, end) in enumerate(offsets) if end > position)


def split_index(tokenizer, text: str, word_start: int) -> tuple[int, int, int]:
    """(generated index, accept id, reject id): where the tokenizations of the decision line as
    written with either word first differ, found through the tokenizer's character offsets."""
    line_start = text.rindex("I recommend", 0, word_start)
    head, tail = text[line_start:word_start], "."
    accept = tokenizer.encode(head + "ACCEPTANCE" + tail, add_special_tokens=False)
    reject = tokenizer.encode(head + "REJECTION" + tail, add_special_tokens=False)
    split = next(i for i, (a, r) in enumerate(zip(accept.ids, reject.ids)) if a != r)
    before = _covering(accept.offsets, len(head)) - split  # tokens from the split to the word's first letter
    full = tokenizer.encode(text, add_special_tokens=False)
    return _covering(full.offsets, word_start) - before, accept.ids[split], reject.ids[split]


def scenario(tokenizer, word: str = "REJECTION", decided: float = 0.45, other: float = 0.05,
             distractors: bool = True) -> Scenario:
    """At the final decision: the decided word's token ``decided``, the other's ``other``, and
    " a" 0.3 and "R" 0.2 as distractors; at the quoted ACCEPTANCE 0.9 against 0.1."""
    text = REVIEW.format(word=word)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    logprobs = [{token: 0.0} for token in ids]
    quoted, accept_id, reject_id = split_index(tokenizer, text, text.index("ACCEPTANCE"))
    logprobs[quoted] = {accept_id: math.log(0.9), reject_id: math.log(0.1)}
    index, accept_id, reject_id = split_index(tokenizer, text, text.rindex(word))
    chosen, counterpart = (accept_id, reject_id) if word == "ACCEPTANCE" else (reject_id, accept_id)
    assert ids[index] == chosen
    final = {chosen: math.log(decided), counterpart: math.log(other)}
    if distractors:
        for text_of, p in ((" a", 0.3), ("R", 0.2)):
            final[tokenizer.encode(text_of, add_special_tokens=False).ids[-1]] = math.log(p)
    logprobs[index] = final
    pieces = [tokenizer.decode([token]) for token in ids]
    return Scenario(text, ids, logprobs, pieces, accept_id, reject_id, index)
