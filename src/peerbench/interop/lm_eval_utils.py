"""The `utils.py` of a task that `peerbench export lm-eval` writes, copied as it is.

It runs inside lm-evaluation-harness, where peerbench may not be installed, so it imports nothing
from peerbench. It must score exactly as peerbench does; tests check it against peerbench's own
parsers and metrics on the same completions (and its regex against the reference card's). Each
document carries its gold label and the task's parser; a review with no usable decision line
(UNPARSED, or AMBIGUOUS: both lines in its final part) counts as the opposite of gold ("wrong")
or as a rejection ("reject"), as the task says, and never as a predicted accept.
"""

import re

REFERENCE_RE = re.compile(r"I recommend this paper for (ACCEPTANCE|REJECTION)\.?")
GAP = r"[\s*_`]+"
LENIENT_RE = re.compile(rf"I{GAP}recommend{GAP}this{GAP}paper{GAP}for{GAP}(ACCEPT(?:ANCE)?|REJECT(?:ION)?)\b\.?",
                        re.IGNORECASE)
HEADING_RE = re.compile(r"^[ \t]*#", re.MULTILINE)
PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n")


def _final_part_start(text):
    headings = list(HEADING_RE.finditer(text))
    if headings:
        return headings[-1].start()
    breaks = list(PARAGRAPH_BREAK_RE.finditer(text.rstrip()))
    return breaks[-1].end() if breaks else 0


def parse_decision(text, parser="reference"):
    """ACCEPT, REJECT, AMBIGUOUS or UNPARSED, by peerbench's rules for the named parser."""
    if not text:
        return "UNPARSED"
    matches = list((LENIENT_RE if parser == "lenient" else REFERENCE_RE).finditer(text))
    if not matches:
        return "UNPARSED"
    start = _final_part_start(text)
    if len({m.group(1).upper().startswith("ACCEPT") for m in matches if m.start() >= start}) == 2:
        return "AMBIGUOUS"
    return "ACCEPT" if matches[-1].group(1).upper().startswith("ACCEPT") else "REJECT"


def process_results(doc, results):
    decision = parse_decision(results[0] if results else "", doc.get("parser", "reference"))
    item = (doc["gold_label"], decision, doc.get("unparsed_policy", "wrong"))
    return {"f1": item, "accuracy": item, "balanced_accuracy": item, "pred_accept_rate": item,
            "parse_failure_rate": item}


def _counts(items):
    tp = fp = fn = tn = unparsed = said_accept = 0
    for gold_label, decision, policy in items:
        if gold_label not in ("ACCEPT", "REJECT"):
            continue  # no known gold label under this task's rule: left out, as peerbench does
        gold = gold_label == "ACCEPT"
        if decision not in ("ACCEPT", "REJECT"):
            unparsed += 1
            predicted = (not gold) if policy == "wrong" else False
        else:
            predicted = decision == "ACCEPT"
        said_accept += decision == "ACCEPT"
        tp += gold and predicted
        fp += (not gold) and predicted
        fn += gold and not predicted
        tn += (not gold) and not predicted
    return tp, fp, fn, tn, unparsed, said_accept


def _ratio(num, den):
    return num / den if den else 0.0


def agg_f1(items):
    tp, fp, fn, tn, _, _ = _counts(items)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def agg_accuracy(items):
    tp, fp, fn, tn, _, _ = _counts(items)
    return _ratio(tp + tn, tp + fp + fn + tn)


def agg_balanced_accuracy(items):
    tp, fp, fn, tn, _, _ = _counts(items)
    pos, neg = tp + fn, tn + fp
    if pos and neg:
        return (tp / pos + tn / neg) / 2
    return _ratio(tp, pos) if pos else _ratio(tn, neg)


def agg_pred_accept_rate(items):
    tp, fp, fn, tn, _, said_accept = _counts(items)
    return _ratio(said_accept, tp + fp + fn + tn)


def agg_parse_failure_rate(items):
    tp, fp, fn, tn, unparsed, _ = _counts(items)
    return _ratio(unparsed, tp + fp + fn + tn)
