import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peerbench.errors import ConfigError
from peerbench.parsing import decision_line, parse_decision, reference_regex
from peerbench.records import Decision

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

CARD = Path(__file__).resolve().parents[2] / "shared" / "data" / "card" / "card.json"
A, R, AMB, U = Decision.ACCEPT, Decision.REJECT, Decision.AMBIGUOUS, Decision.UNPARSED

ECHOED_TEMPLATE = """## Summary
A solid paper.

## Final Recommendation
End with EXACTLY ONE line:
    I recommend this paper for ACCEPTANCE.
    I recommend this paper for REJECTION.
"""


@pytest.mark.parametrize("text, reference, lenient", [
    ("...\nI recommend this paper for ACCEPTANCE.", A, A),
    ("I recommend this paper for REJECTION", R, R),
    ("i recommend this paper for acceptance.", U, A),                 # case: the card's regex is case-sensitive
    ("**I recommend this paper for ACCEPTANCE.**", A, A),             # emphasis around the line: the regex finds it
    ("I recommend this paper for **REJECTION**.", U, R),              # emphasis inside the line
    ("_I recommend this paper for REJECTION._", R, R),
    ("I recommend this paper for ACCEPT.", U, A),                     # the short word
    ("I recommend this paper for REJECT", U, R),
    ("I recommend this paper for ACCEPTANCES.", A, U),                # the card's regex has no word boundary
    # the last line wins when an earlier one is quoted outside the final part
    ("## Summary\nThe prompt said 'I recommend this paper for ACCEPTANCE.'\n\n## Final Recommendation\n"
     "I recommend this paper for REJECTION.", R, R),
    ("Quoted: I recommend this paper for REJECTION.\n\nI recommend this paper for ACCEPTANCE.", A, A),
    # both lines in the final part: the template echoed, or a change of mind
    (ECHOED_TEMPLATE, AMB, AMB),
    ("I recommend this paper for REJECTION.\nOn reflection: I recommend this paper for ACCEPTANCE.", AMB, AMB),
    ("## Final Recommendation\nI recommend this paper for ACCEPTANCE.\nI recommend this paper for ACCEPTANCE.", A, A),
    ("I recommend acceptance.", U, U),
    ("I recommend this paper for MAJOR REVISION.", U, U),
    ("", U, U),
    (None, U, U),
])
def test_each_parser_follows_its_documented_rules(text, reference, lenient):
    assert parse_decision(text) is reference
    assert parse_decision(text, "reference") is reference
    assert parse_decision(text, "lenient") is lenient


def test_the_reference_parser_uses_the_cards_regex_exactly():
    card = json.loads(CARD.read_text())
    assert reference_regex().pattern == card["decision_regex"] == r"I recommend this paper for (ACCEPTANCE|REJECTION)\.?"
    assert not reference_regex().flags & re.IGNORECASE


def test_unknown_parser_is_one_line():
    with pytest.raises(ConfigError, match="parser 'strict': valid choices: reference, lenient"):
        parse_decision("x", "strict")


@given(st.text(max_size=300), st.booleans())
def test_a_review_ending_in_its_decision_line_is_that_decision(prefix, accept):
    # A paragraph break keeps any decision line the random prefix happens to contain out of the final part.
    text = prefix + "\n\n" + decision_line(accept)
    assert parse_decision(text) is (A if accept else R)
    assert parse_decision(text, "lenient") is (A if accept else R)
