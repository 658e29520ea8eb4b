import pytest

from peerbench.parsing import decision_line, parse_decision
from peerbench.records import Decision


@pytest.mark.parametrize("text, expected", [
    ("...\nI recommend this paper for ACCEPTANCE.", Decision.ACCEPT),
    ("I recommend this paper for REJECTION", Decision.REJECT),
    ("i recommend this paper for acceptance.", Decision.ACCEPT),
    ("**I recommend this paper for ACCEPTANCE.**", Decision.ACCEPT),
    ("I recommend this paper for **REJECTION**.", Decision.REJECT),
    ("_I recommend this paper for REJECTION._", Decision.REJECT),
    ("Format: I recommend this paper for ACCEPTANCE.\n...\nI recommend this paper for REJECTION.", Decision.REJECT),
    ("I recommend this paper for REJECTION.\nOn reflection: I recommend this paper for ACCEPTANCE.", Decision.ACCEPT),
    ("I recommend acceptance.", Decision.UNPARSED),
    ("I recommend this paper for MAJOR REVISION.", Decision.UNPARSED),
    ("", Decision.UNPARSED),
    (None, Decision.UNPARSED),
])
def test_parse_decision(text, expected):
    assert parse_decision(text) is expected


def test_decision_line_round_trips():
    assert parse_decision(decision_line(True)) is Decision.ACCEPT
    assert parse_decision(decision_line(False)) is Decision.REJECT
    assert decision_line(True) == "I recommend this paper for ACCEPTANCE."
