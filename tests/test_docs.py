import subprocess
import sys

from conftest import REPO


def test_label_audit_figures_come_from_the_script():
    printed = subprocess.run([sys.executable, str(REPO / "scripts" / "label_audit.py")], capture_output=True,
                             text=True, check=True).stdout.strip()
    doc = (REPO / "docs" / "label-audit.md").read_text()
    embedded = doc.split("<!-- label-audit:begin -->")[1].split("<!-- label-audit:end -->")[0].strip()
    assert embedded == printed
    assert "| always-accept | 0.914 |" in printed


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text().splitlines()
    commands = [line for line in readme[:15] if line.startswith("python3 -m venv")]
    assert len(commands) == 2, "README opens with the two set-up commands"
    assert "peerbench run --backend baseline --task peerread95" in commands[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci
