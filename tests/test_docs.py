import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)


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


def test_the_architecture_page_names_every_module_of_the_run_loop_and_reporting():
    page = (REPO / "docs" / "architecture.md").read_text()
    for folder in ("pipeline", "reporting"):
        for module in sorted((REPO / "src" / "peerbench" / folder).glob("*.py")):
            if module.name != "__init__.py":
                assert module.name in page, f"docs/architecture.md does not name {folder}/{module.name}"


def test_no_module_over_400_lines_and_no_function_over_60():
    import ast

    too_long = []
    for path in sorted((REPO / "src" / "peerbench").rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"{path.relative_to(REPO)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)
