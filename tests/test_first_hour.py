"""What a newcomer meets first: the offline demo, the hints where a command has nothing to show, and
a PeerRead mirror's listing (issue 37)."""

import json
import re

import pytest
from click.testing import CliRunner
from conftest import REPO

from peerbench.cli import build_cli

pytestmark = pytest.mark.fast


def invoke(args: list[str], **env: str):
    return CliRunner().invoke(build_cli(), args, env={"COLUMNS": "200", **env})


def readme_demo_command() -> list[str]:
    """The offline command README shows right under its two set-up commands."""
    readme = (REPO / "README.md").read_text().splitlines()
    (line,) = [line for line in readme[:25] if line.startswith(".venv/bin/peerbench run")]
    return line.split()[1:]


def test_the_shipped_demo_gives_a_result_without_network_or_model(tmp_path):
    args = readme_demo_command()
    assert args[args.index("--out") + 1] == "out/demo"  # under the folder README's examples share
    result = invoke([*args, "-q", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "demo" / "samples.jsonl").is_file()  # the test's working directory
    # 10 synthetic papers, 6 with mean score >= 4; the shipped reviews accept d01-d04 and d07:
    # TP 4, FP 1, FN 2, TN 3 -> F1 = 8/11, accuracy 7/10, always-accept's F1 = 2*6/(2*6+4) = 0.750
    assert "confusion (gold recommendation>=4): TP 4 FP 1 FN 2 TN 3" in result.stdout
    metrics = json.loads((tmp_path / "out" / "demo" / "metrics.json").read_text())
    overall = metrics["label_rules"]["recommendation>=4"]["overall"]
    assert overall["metrics"]["f1"]["value"] == pytest.approx(8 / 11)
    assert overall["metrics"]["accuracy"]["value"] == pytest.approx(0.7)
    assert overall["n_with_p_accept"] == 10  # the preset reads the file's p_accept field


def test_the_demo_is_labelled_synthetic_everywhere_a_user_sees_it():
    papers = [json.loads(line) for line in (REPO / "tasks" / "demo" / "synthetic-papers.jsonl").read_text().splitlines()]
    reviews = (REPO / "tasks" / "demo" / "synthetic-reviews.jsonl").read_text().splitlines()
    assert len(papers) == len(reviews) == 10
    assert all(p["title"].endswith("(SYNTHETIC)") and p["meta"] == {"synthetic": True} for p in papers)
    assert all("SYNTHETIC" in json.loads(line)["completion"] for line in reviews)
    listed = invoke(["tasks"]).stdout
    assert re.search(r"demo-synthetic +│ 10 +│", listed) and "SYNTHETIC" in listed  # its size, from the JSONL
    assert "SYNTHETIC" in invoke(["models"]).stdout


def test_a_plugin_command_without_its_plugin_says_how_to_install_it():
    result = invoke(["distill", "run", "--workdir", "x"])
    assert result.exit_code == 2
    assert ("'distill' comes with the peerbench-distill plugin, which is not installed: pip install -e "
            "plugins/peerbench-distill") in result.output
    assert "No such command 'nosuch'" in invoke(["nosuch"]).output  # any other name: click's own line


def test_models_says_what_would_fill_it(isolated_home):
    shown = invoke(["models"]).stdout
    assert f"user presets file: {isolated_home / 'models.yaml'} (none yet)" in shown
    assert "peerbench distill register" in shown and "pip install -e plugins/peerbench-distill" in shown


def test_a_mirror_without_a_listing_says_every_way_around(peerread_server, isolated_home):
    """The train split is not in peerread95.json: its file names come from a listing. Without one, the
    line names the three ways around; with the list written where it says, no listing request is made."""
    from peerbench.datasets.peerread import PEERREAD_COMMIT

    env = {"PEERBENCH_PEERREAD_LISTING_URL": "http://127.0.0.1:9/none"}
    failed = invoke(["data", "pull", "peerread", "--venues", "conll_2016", "--splits", "train"], **env)
    assert failed.exit_code == 2
    listing = isolated_home / "peerread" / PEERREAD_COMMIT / "listings" / "conll_2016-train.json"
    line = failed.output.strip()
    assert "\n" not in line and "cannot list PeerRead's conll_2016/train files" in line
    assert "--data-dir (or PEERBENCH_DATA)" in line and "PEERBENCH_PEERREAD_LISTING_URL" in line
    assert line.endswith(f"write the folder's file names as a JSON list to {listing}")
    listing.parent.mkdir(parents=True)
    listing.write_text(json.dumps(["9000.json", "9001.json", "9002.json", "9003.json"]))
    pulled = invoke(["data", "pull", "peerread", "--venues", "conll_2016", "--splits", "train"], **env)
    assert pulled.exit_code == 0, pulled.output
    assert "8 files fetched" in pulled.stdout
    assert not [hit for hit in peerread_server.hits if hit.startswith("listing:")]


def test_the_main_job_installs_no_torch():
    """README's first command installs the bare package: nothing it needs, at any depth, is torch or
    the CUDA runtime (followed through the requirements of what is installed here)."""
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, distribution

    def name(requirement: str) -> str:
        return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    todo = [name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        try:
            requires = distribution(package).requires or []
        except PackageNotFoundError:
            continue
        todo.extend(name(r) for r in requires if "extra ==" not in r)
    assert {"scikit-learn", "numpy", "rich"} <= seen
    assert not {p for p in seen if p in ("torch", "transformers", "vllm") or p.startswith("nvidia-")}, seen


def test_gitignore_covers_what_peerbench_and_the_readme_write():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert {"peerbench-runs/", "peerbench-sweeps/", "/out/"} <= set(ignored)
    use = (REPO / "README.md").read_text().split("## Use")[1].split("## Documentation")[0]
    written = re.findall(r"--(?:out|html|png|workdir) (\S+)", use)
    assert written and all(path.startswith(("out/", "peerbench-runs/", "peerbench-sweeps/")) for path in written), written
