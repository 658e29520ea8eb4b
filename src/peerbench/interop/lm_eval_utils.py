"""The `utils.py` of a task that `peerbench export lm-eval` writes, copied as it is.

It runs inside lm-evaluation-harness, where peerbench may not be installed, so it imports nothing
from peerbench. It must score exactly as peerbench does; tests check it against peerbench's own
parser and metrics on the same completions. Each document carries its gold label; a review with
no decision line (UNPARSED) counts as the opposite of gold ("wrong") or as a rejection
("reject"), as the task says.
"""

import re

DECISION_RE = re.compile(r"I\s+recommend\s+this\s+paper\s+for\s+(ACCEPTANCE|REJECTION)\.?", re.IGNORECASE)
EMPHASIS_RE = re.compile(r"[*_`]+")


def parse_decision(text):
    """ACCEPT, REJECT or UNPARSED: the last decision line wins, markdown emphasis ignored."""
    if not text:
        return "UNPARSED"
    found = DECISION_RE.findall(EMPHASIS_RE.sub("", text))
    if not found:
        return "UNPARSED"
    return "ACCEPT" if found[-1].upper() == "ACCEPTANCE" else "REJECT"


def process_results(doc, results):
    decision = parse_decision(results[0] if results else "")
    item = (doc["gold_label"], decision, doc.get("unparsed_policy", "wrong"))
    return {"f1": item, "accuracy": item, "balanced_accuracy": item, "pred_accept_rate": item,
            "parse_failure_rate": item}


def _counts(items):
    tp = fp = fn = tn = unparsed = 0
    for gold_label, decision, policy in items:
        if gold_label not in ("ACCEPT", "REJECT"):
            continue  # no known gold label under this task's rule: left out, as peerbench does
        gold = gold_label == "ACCEPT"
        if decision == "UNPARSED":
            unparsed += 1
            predicted = (not gold) if policy == "wrong" else False
        else:
            predicted = decision == "ACCEPT"
        tp += gold and predicted
        fp += (not gold) and predicted
        fn += gold and not predicted
        tn += (not gold) and not predicted
    return tp, fp, fn, tn, unparsed


def _ratio(num, den):
    return num / den if den else 0.0


def agg_f1(items):
    tp, fp, fn, tn, _ = _counts(items)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def agg_accuracy(items):
    tp, fp, fn, tn, _ = _counts(items)
    return _ratio(tp + tn, tp + fp + fn + tn)


def agg_balanced_accuracy(items):
    tp, fp, fn, tn, _ = _counts(items)
    pos, neg = tp + fn, tn + fp
    if pos and neg:
        return (tp / pos + tn / neg) / 2
    return _ratio(tp, pos) if pos else _ratio(tn, neg)


def agg_pred_accept_rate(items):
    tp, fp, fn, tn, _ = _counts(items)
    return _ratio(tp + fp, tp + fp + fn + tn)


def agg_parse_failure_rate(items):
    tp, fp, fn, tn, unparsed = _counts(items)
    return _ratio(unparsed, tp + fp + fn + tn)
