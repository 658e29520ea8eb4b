import inspect
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli

import peerbench
from peerbench import hookspecs, plugins, registry
from peerbench.errors import DuplicateNameError


@pytest.fixture
def inline_plugin():
    """Register a plugin object for one test, llm-style; the registries are rebuilt around it."""
    registered = []

    def register(obj, name):
        plugins.load_plugins()
        plugins.pm.register(obj, name=name)
        registered.append(name)
        registry.reset()

    yield register
    for name in registered:
        plugins.pm.unregister(name=name)
    plugins.failures[:] = [f for f in plugins.failures if f.name not in registered]
    registry.reset()


def test_every_hook_has_a_test():
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    tests = set(globals())
    assert hooks and [h for h in hooks if f"test_hook_{h}" not in tests] == []


def test_every_hook_and_its_arguments_are_documented():
    doc = (REPO / "docs" / "plugins.md").read_text()
    for name in (n for n in dir(hookspecs) if n.startswith("register_")):
        args = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"{name}({', '.join(args)})" in doc, name


def test_hook_register_backends(inline_plugin):
    from peerbench.backends.baseline import BaselineBackend

    class Mine:
        @peerbench.hookimpl
        def register_backends(self, register):
            register("mine", BaselineBackend, description="a copy")

    inline_plugin(Mine(), "mine-plugin")
    assert "mine" in peerbench.list_backends()
    assert registry.registries().backends.get("mine").plugin == "mine-plugin"


def test_hook_register_datasets(inline_plugin):
    from peerbench.datasets.peerread import PeerRead

    class Mine:
        @peerbench.hookimpl
        def register_datasets(self, register):
            register("peerread-copy", PeerRead)

    inline_plugin(Mine(), "ds-plugin")
    assert "peerread-copy" in peerbench.list_datasets()


def test_hook_register_tasks(inline_plugin, tmp_path):
    (tmp_path / "t.yaml").write_text("task: plugin-task\nversion: 1\ndataset: {name: peerread}\n")

    class Mine:
        @peerbench.hookimpl
        def register_tasks(self, register):
            register(tmp_path / "t.yaml")

    inline_plugin(Mine(), "task-plugin")
    assert peerbench.load_task("plugin-task").source == str(tmp_path / "t.yaml")


def test_hook_register_metrics(inline_plugin, peerread_root, tmp_path):
    from peerbench.metrics import Metric

    class Mine:
        @peerbench.hookimpl
        def register_metrics(self, register):
            register(Metric("n_accepted", "papers predicted accept", lambda i: float(i.y_pred.sum())))

    inline_plugin(Mine(), "metric-plugin")
    result = peerbench.run(task="peerread-conll2016", model="always-accept", data_dir=peerread_root,
                           out=tmp_path / "r", resamples=20)
    assert result.metrics["label_rules"]["recommendation>=4"]["overall"]["metrics"]["n_accepted"]["value"] == 3.0


def test_hook_register_label_rules(inline_plugin):
    from peerbench.labels import LabelRule, get_label_rule

    class Mine:
        @peerbench.hookimpl
        def register_label_rules(self, register):
            register(LabelRule("coin", "heads", lambda paper: len(paper.title) % 2 == 0))

    inline_plugin(Mine(), "rule-plugin")
    assert "coin" in peerbench.list_label_rules() and get_label_rule("coin").description == "heads"
    assert get_label_rule("recommendation>=3.5").name == "recommendation>=3.5"


def test_hook_register_models(inline_plugin):
    class Mine:
        @peerbench.hookimpl
        def register_models(self, register):
            register("tiny", backend="baseline", model="always-reject")

    inline_plugin(Mine(), "model-plugin")
    from peerbench.pipeline.plan import resolve_model

    assert resolve_model(None, "tiny", {}) == ("baseline", "always-reject", {})


def test_hook_register_commands(echo_site, isolated_home, tmp_path):
    plugin = tmp_path / "site"
    (plugin / "hello_cmd").mkdir(parents=True)
    (plugin / "hello_cmd" / "__init__.py").write_text(textwrap.dedent("""
        import click, peerbench
        @peerbench.hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")
    """))
    dist = plugin / "hello_cmd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[peerbench]\nhello = hello_cmd\n")
    result = run_cli(["hello"], cli_env(isolated_home, PYTHONPATH=str(plugin)))
    assert result.returncode == 0 and "hello from a plugin" in result.stdout


def test_duplicate_names_name_both_plugins(inline_plugin):
    from peerbench.backends.baseline import BaselineBackend

    class Clash:
        @peerbench.hookimpl
        def register_backends(self, register):
            register("baseline", BaselineBackend)

    inline_plugin(Clash(), "clash-plugin")
    with pytest.raises(DuplicateNameError, match="backend 'baseline' is registered by both") as info:
        peerbench.list_backends()
    assert "'clash-plugin'" in str(info.value) and "'peerbench.backends.baseline'" in str(info.value)


def test_a_plugin_raising_in_a_hook_is_reported_and_the_rest_works(inline_plugin):
    class Broken:
        @peerbench.hookimpl
        def register_backends(self, register):
            raise RuntimeError("cannot find my GPU\nsecond line")

    inline_plugin(Broken(), "broken-hook")
    assert "baseline" in peerbench.list_backends()
    failure = [f for f in plugins.failures if f.name == "broken-hook"][0]
    assert failure.error == "RuntimeError: cannot find my GPU" and failure.stage == "register_backends"


def test_example_plugin_installed_with_pip_runs_through_the_cli(echo_site, peerread_root, isolated_home, tmp_path):
    env = cli_env(isolated_home, PYTHONPATH=str(echo_site), COLUMNS="200")
    listed = run_cli(["plugins"], env)
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if " echo " in line)
    assert "0.2.0" in line and "register_backends" in line and "register_models" in line
    assert "echo" in run_cli(["backends"], env).stdout
    result = run_cli(["run", "--backend", "echo", "-o", "decision=alternate", "--task", "peerread-acl2017",
                      "--data-dir", str(peerread_root), "--out", str(tmp_path / "r"), "-q", "--resamples", "10"], env)
    assert result.returncode == 0, result.stderr
    assert "echo:echo" in result.stdout and "ACCEPT 7, REJECT 7" in result.stdout


def write_broken_plugin(site: Path) -> None:
    site.mkdir(parents=True, exist_ok=True)
    (site / "broken_plugin.py").write_text("raise ImportError('needs a library that is not installed')\n")
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[peerbench]\nbroken = broken_plugin\n")


def test_broken_plugin_leaves_the_cli_working(peerread_root, isolated_home, tmp_path):
    site = tmp_path / "site"
    write_broken_plugin(site)
    env = cli_env(isolated_home, PYTHONPATH=str(site), COLUMNS="200")
    assert run_cli(["--help"], env).returncode == 0
    listed = run_cli(["plugins"], env)
    assert listed.returncode == 0
    assert "broken (import): ImportError: needs a library that is not installed" in listed.stdout
    result = run_cli(["run", "--model", "always-accept", "--task", "peerread-conll2016", "--data-dir",
                      str(peerread_root), "--out", str(tmp_path / "r"), "-q", "--resamples", "10"], env)
    assert result.returncode == 0, result.stderr


def test_load_plugins_env_limits_entry_points(echo_site, isolated_home):
    env = cli_env(isolated_home, PYTHONPATH=str(echo_site), PEERBENCH_LOAD_PLUGINS="", COLUMNS="200")
    assert "echo" not in run_cli(["backends"], env).stdout


def test_trace_plugins_shows_hook_calls(isolated_home):
    result = run_cli(["backends"], cli_env(isolated_home, PEERBENCH_TRACE_PLUGINS="1"))
    assert "peerbench: register_backends <- peerbench.backends.baseline" in result.stderr
