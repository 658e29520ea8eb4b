import ast
import dataclasses
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli

import peerbench
from peerbench import hookspecs, plugins, registry
from peerbench.errors import DuplicateNameError

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

PLUGINS_DOC = REPO / "docs" / "plugins.md"


def test_every_hook_has_a_test():
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    tests = set(globals())
    assert hooks and [h for h in hooks if f"test_hook_{h}" not in tests] == []


def test_every_hook_and_its_arguments_are_documented():
    doc = PLUGINS_DOC.read_text()
    for name in (n for n in dir(hookspecs) if n.startswith("register_")):
        args = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"### {name}({', '.join(args)})" in doc, name


def doc_section(heading: str) -> str:
    """The text under one ``### heading`` of docs/plugins.md, up to the next heading."""
    doc = PLUGINS_DOC.read_text()
    assert f"### {heading}\n" in doc, heading
    return re.split(r"^#{2,3} ", doc.split(f"### {heading}\n", 1)[1], flags=re.MULTILINE)[0]


def documented_text(section: str, callee: str) -> str:
    """The arguments of the first `` `callee(...)` `` in a section, as written."""
    found = re.search(rf"`{re.escape(callee)}\(([^`]*)\)`", section)
    assert found, f"no `{callee}(...)` documented"
    return found.group(1)


def documented_call(section: str, callee: str) -> list[tuple[str, str, object]]:
    """The first `` `callee(...)` `` in a section as (name, kind, default) per argument."""
    args = ast.parse(f"def f({documented_text(section, callee)}): pass").body[0].args
    positional = [(a.arg, "positional") for a in args.args]
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults]
    keyword = [(a.arg, "keyword", inspect.Parameter.empty if d is None else ast.literal_eval(d))
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [(n, k, d) for (n, k), d in zip(positional, defaults)] + keyword


def accepted_call(func) -> list[tuple[str, str, object]]:
    kinds = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional", inspect.Parameter.KEYWORD_ONLY: "keyword"}
    params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    return [(p.name, kinds.get(p.kind, str(p.kind)), p.default) for p in params]


@pytest.mark.parametrize("hook", sorted(registry.CALLBACKS))
def test_register_callbacks_take_the_documented_arguments(hook):
    """Argument names, keyword-only-ness and defaults, as datasette's docs test checks its hooks."""
    section = doc_section(f"{hook}(register)")
    assert documented_call(section, "register") == accepted_call(registry.register_callback(hook))
    assert f"register({documented_text(section, 'register')})" in inspect.getdoc(getattr(hookspecs, hook))


@pytest.mark.parametrize("cls, hook", [("Metric", "register_metrics"), ("LabelRule", "register_label_rules")])
def test_documented_fields_are_the_dataclass_fields(cls, hook):
    documented = [(n, d) for n, _, d in documented_call(doc_section(f"{hook}(register)"), cls)]
    fields = [(f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
              for f in dataclasses.fields(getattr(peerbench, cls))]
    assert documented == fields


def test_the_docs_test_catches_a_drifted_argument():
    """The parser behind the two tests above sees a missing keyword and a changed default."""
    def register(name, factory, *, extra=None, description=""):
        pass

    assert documented_call('`register(name, factory, *, extra=None, description="")`', "register") == \
        accepted_call(register)
    assert documented_call("`register(name, factory, *, extra=None)`", "register") != accepted_call(register)
    assert documented_call('`register(name, factory, *, extra="x", description="")`', "register") != \
        accepted_call(register)


STUBS_MADE: list[str] = []


class StubBackend(peerbench.Backend):
    """A backend written against the public API only; records each instance the registry makes."""

    name = "mine"
    default_model = "stub"

    def __init__(self, model=None, **options):
        super().__init__(model, **options)
        STUBS_MADE.append(self.model)

    async def generate(self, requests):
        return [peerbench.Completion(text=f"{r.paper.title}\n\n{peerbench.decision_line(False)}") for r in requests]


def test_hook_register_backends(inline_plugin, peerread_root, tmp_path):
    class Mine:
        @peerbench.hookimpl
        def register_backends(self, register):
            register("mine", StubBackend, description="a stub")

    inline_plugin(Mine(), "mine-plugin")
    STUBS_MADE.clear()
    assert "mine" in peerbench.list_backends()
    assert registry.registries().backends.get("mine").plugin == "mine-plugin"
    result = peerbench.run(task="peerread-conll2016", backend="mine", data_dir=peerread_root, out=tmp_path / "r",
                           resamples=10)
    assert STUBS_MADE == ["stub"] and result.config["backend"] == "mine"
    assert result.metrics["decisions"]["REJECT"] == 3
    assert all(s["completion"].startswith(s["title"]) for s in result.samples)


class CritiqueOptions(peerbench.ProtocolOptions):
    rounds: int = 1


class Critique(peerbench.Protocol):
    """A third-party protocol written against the public API only: a draft, then critique rounds."""

    name = "critique"
    Options = CritiqueOptions

    async def review(self, prompt, call):
        history = [*prompt.messages, {"role": "assistant", "content": (await call(prompt.messages, label="draft"))[0].text}]
        for round_ in range(self.options.rounds):
            history.append({"role": "user", "content": "Critique your review, then give it again."})
            answer = (await call(history, label=f"critique {round_ + 1}", temperature=0.0))[0]
            history.append({"role": "assistant", "content": answer.text})
        return peerbench.Review(history[-1]["content"], extra={"turns": len(history)})


class Transcript(peerbench.Backend):
    """Answers with the number of turns it was sent; rejects at the first turn, accepts later."""

    name = "transcript"
    default_model = "stub"
    seen: list = []

    async def generate(self, requests):
        Transcript.seen.extend((r.messages, r.generation.temperature) for r in requests)
        return [peerbench.Completion(text=f"{len(r.messages)} turns.\n"
                                     f"{peerbench.decision_line(len(r.messages) > 2)}") for r in requests]


def test_hook_register_protocols(inline_plugin, peerread_root, tmp_path):
    class Mine:
        @peerbench.hookimpl
        def register_protocols(self, register):
            register("critique", Critique, description="draft, then critique rounds")

        @peerbench.hookimpl
        def register_backends(self, register):
            register("transcript", Transcript)

    inline_plugin(Mine(), "critique-plugin")
    assert "critique" in peerbench.list_protocols()
    Transcript.seen = []
    result = peerbench.run(task="peerread-conll2016", backend="transcript", data_dir=peerread_root, limit=1,
                           out=tmp_path / "r", resamples=10, protocol="critique", protocol_options={"rounds": 2})
    (sample,) = result.samples
    assert [(len(messages), temperature) for messages, temperature in Transcript.seen] == [(2, 0.2), (4, 0.0), (6, 0.0)]
    assert Transcript.seen[2][0][4]["content"] == "4 turns.\n" + peerbench.decision_line(True)
    assert sample["completion"].startswith("6 turns.") and sample["decision"] == "ACCEPT"
    assert [e["label"] for e in sample["trace"]] == ["draft", "critique 1", "critique 2"]
    assert sample["extra"]["turns"] == 7 and sample["extra"]["calls"] == 3
    assert result.config["protocol"] == {"name": "critique", "options": {"rounds": 2}}
    with pytest.raises(peerbench.ConfigError, match=r"-o rounds: Input should be a valid integer"):
        peerbench.run(task="peerread-conll2016", backend="transcript", data_dir=peerread_root, limit=1,
                      out=tmp_path / "bad", protocol="critique", protocol_options={"rounds": "many"})


def test_hook_register_datasets(inline_plugin, peerread_root, tmp_path):
    made = []

    def factory(data_dir=None):
        made.append(data_dir)
        return registry.registries().datasets.get("peerread").value(data_dir)

    class Mine:
        @peerbench.hookimpl
        def register_datasets(self, register):
            register("peerread-copy", factory, description="PeerRead under another name")

    inline_plugin(Mine(), "ds-plugin")
    assert "peerread-copy" in peerbench.list_datasets()
    task = peerbench.load_task("peerread-conll2016")
    task = task.model_copy(update={"task": "copy-task", "dataset": peerbench.DatasetSpec(
        name="peerread-copy", venues=["conll_2016"], splits=["dev"])})
    result = peerbench.run(task, "baseline", "always-accept", data_dir=peerread_root, out=tmp_path / "r",
                           resamples=10)
    assert made and all(d == peerread_root for d in made)
    assert result.samples and {s["venue"] for s in result.samples} == {"conll_2016"}
    assert {s["split"] for s in result.samples} == {"dev"}


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


def test_a_misspelt_register_keyword_is_the_plugins_error(inline_plugin):
    class Typo:
        @peerbench.hookimpl
        def register_backends(self, register):
            register("typo-backend", StubBackend, descripton="a typo")

    inline_plugin(Typo(), "typo-plugin")
    assert "typo-backend" not in peerbench.list_backends() and "baseline" in peerbench.list_backends()
    failure = next(f for f in plugins.failures if f.name == "typo-plugin")
    assert "descripton" in failure.error and failure.stage == "register_backends"


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
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


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
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


def write_backend_plugin(site: Path, name: str) -> None:
    """An installed distribution (a dist-info folder on sys.path) whose entry point registers
    the backend ``<name>-backend``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}_plugin.py").write_text(textwrap.dedent(f"""
        import peerbench
        @peerbench.hookimpl
        def register_backends(register):
            register("{name}-backend", peerbench.get_backend("baseline").__class__)
    """))
    dist = site / f"{name}_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[peerbench]\n{name} = {name}_plugin\n")


@pytest.fixture
def fresh_plugin_load(tmp_path, monkeypatch):
    """Two installed plugins, alpha and beta, and a function that runs load_plugins afresh and
    says which of them it loaded; everything is unregistered afterwards."""
    site = tmp_path / "site"
    for name in ("alpha", "beta"):
        write_backend_plugin(site, name)
    monkeypatch.syspath_prepend(str(site))
    before = {name for name, _ in plugins.pm.list_name_plugin()}

    def load() -> set[str]:
        monkeypatch.setattr(plugins, "_loaded", False)
        plugins.load_plugins()
        registry.reset()
        backends = set(peerbench.list_backends())
        loaded = {n for n in ("alpha", "beta") if plugins.pm.get_plugin(n) is not None}
        assert loaded == {n for n in ("alpha", "beta") if f"{n}-backend" in backends}
        for name in loaded:
            plugins.pm.unregister(name=name)
        return loaded

    yield load
    for name, _ in plugins.pm.list_name_plugin():
        if name not in before:
            plugins.pm.unregister(name=name)
    for module in ("alpha_plugin", "beta_plugin"):
        sys.modules.pop(module, None)
    registry.reset()


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
def test_load_plugins_env_limits_entry_points(fresh_plugin_load, monkeypatch):
    monkeypatch.delenv("PEERBENCH_LOAD_PLUGINS", raising=False)
    assert fresh_plugin_load() == set()  # under pytest, installed plugins do not leak in
    monkeypatch.setenv("PEERBENCH_LOAD_PLUGINS", "alpha")
    assert fresh_plugin_load() == {"alpha"}
    monkeypatch.setenv("PEERBENCH_LOAD_PLUGINS", " beta , alpha ")
    assert fresh_plugin_load() == {"alpha", "beta"}
    monkeypatch.setenv("PEERBENCH_LOAD_PLUGINS", "")
    assert fresh_plugin_load() == set()
    monkeypatch.delattr(sys, "_called_from_test")
    monkeypatch.delenv("PEERBENCH_LOAD_PLUGINS")
    assert fresh_plugin_load() == {"alpha", "beta"}  # outside tests every installed plugin loads


@pytest.mark.slow  # seconds, not milliseconds: left out of `-m fast`
def test_load_plugins_env_limits_entry_points_on_the_command_line(echo_site, isolated_home):
    def backends(**extra):
        env = cli_env(isolated_home, PYTHONPATH=str(echo_site), COLUMNS="200", **extra)
        rows = [line.split("│") for line in run_cli(["backends"], env).stdout.splitlines()]
        return [row[1].strip() for row in rows if len(row) > 2]

    assert "echo" in backends() and "echo" in backends(PEERBENCH_LOAD_PLUGINS="echo")
    assert "echo" not in backends(PEERBENCH_LOAD_PLUGINS="") and "baseline" in backends(PEERBENCH_LOAD_PLUGINS="")


def test_trace_plugins_shows_hook_calls(isolated_home):
    result = run_cli(["backends"], cli_env(isolated_home, PEERBENCH_TRACE_PLUGINS="1"))
    assert "peerbench: register_backends <- peerbench.backends.baseline" in result.stderr


def test_example_plugin_reads_the_paper_and_keeps_operational_options_out_of_the_cache(
        echo_plugin, peerread_root, tmp_path):
    first = peerbench.run(task="peerread-conll2016", backend="echo", data_dir=peerread_root, out=tmp_path / "r",
                          backend_options={"decision": "alternate"}, resamples=10)
    assert all(f"A paper titled {s['title']}." in s["completion"] for s in first.samples)
    assert sorted(s["decision"] for s in first.samples) == ["ACCEPT", "ACCEPT", "REJECT"]
    # `delay` is operational: the same run directory resumes and every answer comes from the cache
    again = peerbench.run(task="peerread-conll2016", backend="echo", data_dir=peerread_root, out=tmp_path / "r2",
                          backend_options={"decision": "alternate", "delay": 0.001}, resamples=10)
    assert all(s["cached"] for s in again.samples) and again.config["options"]["delay"] == 0.001
    assert again.config["run_identity"] == first.config["run_identity"]
    other = peerbench.run(task="peerread-conll2016", backend="echo", data_dir=peerread_root, out=tmp_path / "r3",
                          backend_options={"decision": "reject"}, resamples=10)
    assert not any(s["cached"] for s in other.samples) and other.config["run_identity"] != first.config["run_identity"]
