import pytest
from conftest import cli_env, run_cli

from peerbench.errors import ConfigError, UnknownNameError
from peerbench.task import load_task

pytestmark = pytest.mark.fast  # `pytest -m fast`: the quick subset (README, testing)

GOOD = """task: my-acl
version: 2
dataset:
  name: peerread
  venues: [acl_2017]
  splits: [dev]
label_rule: recommendation>=3.5
generation:
  max_tokens: 100
"""


def write(tmp_path, text, name="t.yaml"):
    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_builtin_tasks_and_their_settings():
    task = load_task("peerread95")
    assert (task.label_rule, task.max_model_len, task.generation.max_tokens, task.generation.temperature,
            task.generation.top_p) == ("recommendation>=4", 12288, 1400, 0.2, 0.9)
    assert task.label_rules() == ["recommendation>=4", "decision"]
    assert load_task("peerread-iclr2017").label_rule == "decision"


def test_include_path_loads_user_tasks(tmp_path):
    task = load_task("my-acl", [write(tmp_path, GOOD)])
    assert task.version == 2 and task.dataset.args() == {"venues": ["acl_2017"], "splits": ["dev"]}
    assert task.generation.max_tokens == 100 and task.generation.top_p == 0.9
    assert task.fingerprint() != load_task("peerread95").fingerprint()


@pytest.mark.parametrize("text, message", [
    (GOOD + "surprise: 1\n", "unknown field 'surprise'"),
    (GOOD.replace("version: 2\n", ""), "missing field 'version'"),
    (GOOD.replace("max_tokens: 100", "max_tokens: -1"), "field 'generation.max_tokens'"),
    (GOOD.replace("max_tokens: 100", "max_tokns: 100"), "unknown field 'generation.max_tokns'"),
    ("task: [unclosed\n", ":2: not valid YAML"),
    ("- a list\n", "must be a mapping"),
    (GOOD + "user_template: 'no body here'\n", "must contain"),
])
def test_malformed_task_yaml_names_file_and_field(tmp_path, text, message):
    folder = write(tmp_path, text, "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_task("my-acl", [folder])
    assert str(folder / "bad.yaml") in str(info.value) and message in str(info.value)


def test_unknown_task_suggests_a_name():
    with pytest.raises(UnknownNameError, match="did you mean 'peerread95'"):
        load_task("peerread59")


def test_task_colliding_with_a_builtin_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="already defined"):
        load_task("x", [write(tmp_path, GOOD.replace("my-acl", "peerread95"))])


def test_cli_reports_malformed_yaml_in_one_line_with_exit_2(tmp_path, isolated_home):
    folder = write(tmp_path, GOOD + "surprise: 1\n", "bad.yaml")
    result = run_cli(["run", "--task", "my-acl", "--include-path", str(folder)], cli_env(isolated_home))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.yaml: unknown field 'surprise'" in result.stderr


def test_cli_tasks_lists_sizes_and_label_rules(isolated_home, tmp_path):
    result = run_cli(["tasks", "--include-path", str(write(tmp_path, GOOD))], cli_env(isolated_home, COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    assert "peerread95 " in result.stdout and " 95 " in result.stdout and "recommendation>=4" in result.stdout
    assert "my-acl" in result.stdout and "recommendation>=3.5" in result.stdout


def test_a_broken_file_hides_no_other_task_of_its_folder(tmp_path):
    folder = write(tmp_path, GOOD)
    (folder / "broken.yaml").write_text("task: [unclosed\n")
    assert load_task("my-acl", [folder]).task == "my-acl"
    with pytest.raises(ConfigError, match=r"broken.yaml:2: not valid YAML"):
        load_task("the-broken-one", [folder])
