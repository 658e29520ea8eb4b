"""Every listing and result table at 80 columns (piped output, CI logs, `| less`): no line wider, no
ellipsis, and every number printed at 200 columns is printed whole at 80 too."""

from collections import Counter

import pytest
from click.testing import CliRunner

from peerbench.cli import build_cli
from peerbench.reporting.fit import NUMBER

pytestmark = pytest.mark.fast


def shown(args: list[str], columns: int) -> str:
    result = CliRunner().invoke(build_cli(), args, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def is_path_line(line: str) -> bool:
    """A plain line, outside any table, that holds a path (kept whole, to be copied)."""
    return not any(c in line for c in "│┃") and any(word.startswith("/") for word in line.split())


def assert_readable_at_80(args: list[str]) -> str:
    wide, narrow = shown(args, 200), shown(args, 80)
    assert "…" not in wide, wide
    too_wide = [line for line in narrow.splitlines() if len(line) > 80 and not is_path_line(line)]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in narrow, narrow
    missing = Counter(NUMBER.findall(wide)) - Counter(NUMBER.findall(narrow))
    assert not missing, f"numbers cut at 80 columns: {dict(missing)}\n{narrow}"
    return narrow


@pytest.fixture
def demo_runs(tmp_path):
    """The shipped synthetic demo, replayed twice: with its P(accept) and without."""
    runner = CliRunner()
    for out, extra in (("a", []), ("b", ["-o", "p_accept_field=null"])):
        result = runner.invoke(build_cli(), ["run", "--model", "demo-reviews", "--task", "demo-synthetic", "-q",
                                             "--resamples", "200", "--out", str(tmp_path / out), *extra])
        assert result.exit_code == 0, result.output
    return tmp_path / "a", tmp_path / "b"


@pytest.mark.parametrize("args", [["tasks"], ["backends"], ["models"], ["plugins"], ["metrics"], ["data", "info"]])
def test_listings_are_readable_at_80_columns(args, peerread_root, monkeypatch):
    monkeypatch.setenv("PEERBENCH_DATA", str(peerread_root))  # data info then counts real files
    narrow = assert_readable_at_80(args)
    if args == ["tasks"]:  # a name is never cut: it is what the user types next
        assert "openreview-iclr2019-2021 " in narrow and "peerread-iclr2017-rating " in narrow
    if args == ["data", "info"]:
        assert " 14 review files, " in narrow.replace("\n", " ") or "14 review" in narrow


def test_result_tables_are_readable_at_80_columns(demo_runs):
    a, b = demo_runs
    report = assert_readable_at_80(["report", str(a)])
    assert "0.727" in report and "[-0.250," in report  # F1 = 2*4 / (2*4 + 1 + 2) = 8/11; MCC's interval
    compare = assert_readable_at_80(["compare", str(a), str(b)])
    assert "10 of 10" in compare and "0 of 10" in compare


def test_cache_info_is_readable_at_80_columns(isolated_home):
    from peerbench.paths import cache_root
    from peerbench.pipeline.store import ResponseCache

    store = ResponseCache(cache_root() / "responses.sqlite")
    for index in range(12):
        store.put(f"key{index}", {"text": "x"}, model="openai:a-model-name-long-enough-to-need-folding-somewhere")
    store.close()
    narrow = assert_readable_at_80(["cache", "info"])
    assert "12 entries" in narrow and str(cache_root() / "responses.sqlite") in narrow  # the path is whole


def test_a_table_that_fits_is_left_as_given():
    from rich.console import Console

    from peerbench.reporting.fit import Table

    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_row("f1", "0.914")
    console = Console(width=80, record=True)
    console.print(table)
    assert console.export_text().splitlines()[3] == "│ f1   │ 0.914 │"
    assert [(c.width, c.no_wrap) for c in table.columns] == [(None, True), (None, False)]


def rendered(renderable, width: int) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_sweep_and_probe_tables_keep_every_number_when_even_the_names_must_fold():
    from peerbench.reporting.tables import render_probes, render_sweep

    metrics = {"f1": 0.5, "accuracy": 0.4, "balanced_accuracy": 0.5, "mcc": -0.125, "auroc": 0.6875}
    sweep = render_sweep({"name": "grid", "executor": "local", "wall_s": 12.3, "sweep_dir": "/tmp/grid", "runs": [
        {"name": f"peerread-iclr2017-rating__model-{i}", "n": 78, "metrics": metrics, "skipped": True}
        for i in range(3)]})
    arm = {"kind": "injection", "n": 95, "n_unanswered": 2, "clean_rejected": 14, "flip_reject_to_accept": 0.5,
           "flip_reject_to_accept_ci": [0.2143, 0.7857], "net_of_control": {"difference": 0.4286, "ci": [0.0714, 0.7143],
                                                                           "p_value": 0.0313},
           "decision_changed": 0.1263, "decision_changed_ci": [0.0632, 0.1895], "p_accept_shift": 0.0815,
           "p_accept_shift_ci": [0.0312, 0.1318]}
    probes = render_probes({"task": "peerread95", "backend": "openai", "model": "a-long-model-name",
                            "arms": {"injection@end": arm, "control@end": dict(arm, kind="control")}})
    for table in (sweep, probes):
        wide, narrow = rendered(table, 200), rendered(table, 80)
        assert max(map(len, narrow.splitlines())) <= 80 and "…" not in narrow + wide
        assert not Counter(NUMBER.findall(wide)) - Counter(NUMBER.findall(narrow)), narrow
    assert "-0.125" in rendered(sweep, 80) and "+0.082 [+0.031, +0.132]" in rendered(probes, 200)
