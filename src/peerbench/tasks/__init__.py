"""The built-in task YAML files, registered through the same hook a third party uses."""

from pathlib import Path

from peerbench.hookspecs import hookimpl

TASK_DIR = Path(__file__).parent


@hookimpl
def register_tasks(register):
    register(TASK_DIR)
