"""The public API: everything a plugin needs is a name in ``peerbench``, importing it stays cheap,
and the plugins in this repository import nothing else of peerbench's."""

import __future__

import ast
import json
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import REPO

import peerbench

pytestmark = pytest.mark.fast

# Libraries a plugin author's `import peerbench` must not pay for.
HEAVY = ("numpy", "scipy", "sklearn", "torch", "transformers", "vllm", "openai", "google", "matplotlib", "pydantic",
         "rich", "click", "yaml", "jinja2", "httpx", "aiohttp", "tenacity", "filelock", "platformdirs")
SUBMODULES = {m.name for m in pkgutil.iter_modules(peerbench.__path__)}


def test_import_peerbench_loads_no_heavy_library():
    code = "import json, sys, peerbench; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert "peerbench" in loaded
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_touching_every_public_name_still_loads_no_scientific_library():
    code = ("import json, sys, peerbench\nfor n in peerbench.__all__: getattr(peerbench, n)\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert [m for m in loaded if m.split(".")[0] in ("numpy", "sklearn", "torch", "matplotlib", "scipy")] == []


def test_all_is_exactly_the_public_names():
    assert len(peerbench.__all__) == len(set(peerbench.__all__))
    for name in peerbench.__all__:
        assert getattr(peerbench, name) is not None, name
    public = {name for name in dir(peerbench) if not name.startswith("_")
              and not isinstance(getattr(peerbench, name), (types.ModuleType, __future__._Feature))}
    assert public == set(peerbench.__all__) - {"__version__"}
    with pytest.raises(AttributeError, match="no attribute 'backends_registry'"):
        peerbench.backends_registry  # noqa: B018


def test_plugin_classes_are_the_ones_the_built_ins_use():
    assert isinstance(peerbench.get_dataset("peerread"), peerbench.Dataset)
    assert isinstance(peerbench.get_backend("baseline", "always-accept"), peerbench.Backend)
    assert isinstance(peerbench.get_metric("f1"), peerbench.Metric)
    assert isinstance(peerbench.get_label_rule("decision"), peerbench.LabelRule)
    assert isinstance(peerbench.load_task("peerread95"), peerbench.Task)
    assert issubclass(peerbench.get_backend("baseline", "always-accept").Options, peerbench.BackendOptions)
    assert peerbench.parse_decision(peerbench.decision_line(True)) is peerbench.Decision.ACCEPT
    assert issubclass(peerbench.MissingDependency, peerbench.PeerbenchError)
    assert isinstance(peerbench.list_models(), list)
    assert "peerread95" in peerbench.list_tasks()


def test_figure_png_renders_a_figure():
    pytest.importorskip("matplotlib")
    fig, ax = peerbench.pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    assert peerbench.figure_png(fig).startswith(b"\x89PNG")


def test_docs_list_exactly_the_public_api():
    doc = (REPO / "docs" / "plugins.md").read_text()
    listed = doc.split("<!-- public-api:begin -->")[1].split("<!-- public-api:end -->")[0]
    assert set(re.findall(r"`(\w+)`", listed)) == set(peerbench.__all__)


def peerbench_imports(source: str, filename: str = "<string>") -> list[str]:
    """``file:line: statement`` for every import of a peerbench submodule in one source file."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        bad = None
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.startswith("peerbench.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("peerbench."):
                bad = [node.module]
            elif node.module == "peerbench":
                bad = [f"peerbench.{a.name}" for a in node.names if a.name in SUBMODULES]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                str(node.args[0].value).startswith("peerbench.") and \
                getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            bad = [node.args[0].value]
        if bad:
            found.append(f"{filename}:{node.lineno}: imports {', '.join(bad)}")
    return found


def plugin_sources() -> list[Path]:
    return sorted(p for folder in ("examples", "plugins") for p in (REPO / folder).rglob("*.py"))


def test_plugins_and_examples_import_only_peerbench():
    files = plugin_sources()
    assert any("peerbench_echo" in f.name for f in files) and any("peerbench_distill" in str(f) for f in files)
    offending = [hit for f in files for hit in peerbench_imports(f.read_text(), str(f.relative_to(REPO)))]
    assert offending == [], "import these from `peerbench` instead:\n" + "\n".join(offending)


def test_the_import_check_catches_each_form():
    source = ("import peerbench\nfrom peerbench import Backend, hookimpl\nimport peerbench.backends\n"
              "from peerbench.parsing import decision_line\nfrom peerbench import plugins\n"
              "def f():\n    from peerbench.reporting import plots\n"
              "import importlib\nimportlib.import_module('peerbench.registry')\n")
    assert peerbench_imports(source, "x.py") == [
        "x.py:3: imports peerbench.backends", "x.py:4: imports peerbench.parsing", "x.py:5: imports peerbench.plugins",
        "x.py:7: imports peerbench.reporting", "x.py:9: imports peerbench.registry"]


def code_lines(path: Path) -> int:
    """Lines that are neither blank, comments, nor docstrings."""
    tree = ast.parse(path.read_text())
    doc_lines = {line for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str) for line in range(node.lineno, node.end_lineno + 1)}
    return sum(1 for number, line in enumerate(path.read_text().splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and number not in doc_lines)


def test_the_echo_example_reads_in_a_minute():
    source = (REPO / "examples" / "peerbench-echo" / "peerbench_echo.py")
    assert code_lines(source) < 40
    assert "request.paper" in source.read_text() and "user_text.split(\"Title" not in source.read_text()
