"""A dataset from an outside plugin gets `data pull`, `data info` and `validate-data` exactly as the
built-ins do: the plugin below is installed the way pip installs one (a module plus a dist-info with
a `peerbench` entry point on the path) and driven through the real command line."""

import json
import textwrap

import pytest
from conftest import cli_env, run_cli

PLUGIN = textwrap.dedent('''
    """tinyset: papers as one JSON file each under <root>/<venue>/, the root marked by a TINYSET file."""
    import json
    import os
    from pathlib import Path

    from pydantic import BaseModel, ConfigDict, Field

    import peerbench


    class TinyArgs(BaseModel):
        model_config = ConfigDict(extra="forbid")
        venues: list[str] = Field(default_factory=lambda: ["alpha"], min_length=1)
        limit: int = Field(3, ge=1)
        ids: list[str] | None = None


    class TinySet(peerbench.Dataset):
        name = "tinyset"
        Args = TinyArgs

        def __init__(self, data_dir=None):
            super().__init__(data_dir)
            self.root = self.data_dir or Path(os.environ["PEERBENCH_HOME"]) / "tinyset"

        def size(self, args):
            return len(args.venues) * args.limit

        def pull(self, args, *, progress=True):
            written = 0
            for venue in args.venues:
                (self.root / venue).mkdir(parents=True, exist_ok=True)
                for n in range(args.limit):
                    path = self.root / venue / f"p{n}.json"
                    if not path.exists():
                        path.write_text(json.dumps({"id": f"p{n}", "title": f"{venue} paper {n}", "body": "Text."}))
                        written += 1
            (self.root / "TINYSET").write_text("")
            return written

        def describe_pull(self, pulled):
            return [f"tinyset: {pulled} papers written to {self.root}"]

        def load(self, args, *, progress=True):
            self.pull(args, progress=progress)
            return [peerbench.Paper(p.stem, v, json.loads(p.read_text())["title"], "",
                                    [peerbench.Section(None, "Text.")])
                    for v in args.venues for p in sorted((self.root / v).glob("*.json"))]

        def info(self):
            return [self.InfoRow(folder.name, str(folder), f"{len(list(folder.glob('*.json')))} papers",
                                 sum(p.stat().st_size for p in folder.glob("*.json")))
                    for folder in sorted(self.root.glob("*")) if folder.is_dir()]

        @classmethod
        def claims(cls, path):
            return (path / "TINYSET").is_file()

        def validate(self, path):
            files, problems = sorted(path.glob("*/*.json")), []
            for file in files:
                if not json.loads(file.read_text()).get("title"):
                    problems.append(f"{file}: field 'title' missing or empty")
            return len(files), problems


    class BareSet(peerbench.Dataset):
        """Only what every dataset must have; the defaults do the rest."""
        name = "bareset"

        def size(self, args):
            return 2

        def load(self, args, *, progress=True):
            return [peerbench.Paper(str(i), "bare", f"Bare {i}", "", [peerbench.Section(None, "Text.")])
                    for i in (1, 2)]


    @peerbench.hookimpl
    def register_datasets(register):
        register("tinyset", TinySet, description="one JSON file per paper")
        register("bareset", BareSet)
''')


@pytest.fixture
def env(tmp_path, isolated_home):
    """The environment of a user who pip-installed the plugin."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "peerbench_tinyset.py").write_text(PLUGIN)
    dist = site / "peerbench_tinyset-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: peerbench-tinyset\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[peerbench]\ntinyset = peerbench_tinyset\n")
    return cli_env(isolated_home, PYTHONPATH=str(site), COLUMNS="250")


def ok(args, env):
    done = run_cli(args, env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def error(args, env):
    done = run_cli(args, env)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    return done.stderr


def test_data_pull_takes_the_plugins_own_selection(env, isolated_home):
    root = isolated_home / "tinyset"
    assert ok(["data", "pull", "tinyset", "--venues", "alpha,beta", "-s", "limit=2"], env) == \
        f"tinyset: 4 papers written to {root}\n"
    assert ok(["data", "pull", "tinyset", "-s", "venues=[alpha]", "-s", "venues=gamma", "-s", "limit=3"], env) == \
        f"tinyset: 4 papers written to {root}\n"  # alpha/p2 and gamma/p0..p2; alpha/p0, p1 were there
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.json")) == [
        "alpha/p0.json", "alpha/p1.json", "alpha/p2.json", "beta/p0.json", "beta/p1.json",
        "gamma/p0.json", "gamma/p1.json", "gamma/p2.json"]
    assert ok(["data", "pull", "bareset"], env) == "bareset: 2 papers ready\n"  # the default pull: a load


PULL_ERRORS = {
    "tinyst": "unknown dataset 'tinyst' (did you mean 'tinyset'?); valid choices: aiscientist, bareset, hf, jsonl, openreview, "
              "peerread, tinyset",
    "tinyset --splits dev": "--splits: dataset 'tinyset' has no field 'splits' (its fields: venues, limit, ids; "
                            "use -s KEY=VALUE)",
    "bareset --limit 2": "--limit: dataset 'bareset' has no field 'limit' (its fields: none; use -s KEY=VALUE)",
    "tinyset -s limit=0": "peerbench data pull tinyset: dataset field 'limit': Input should be greater than or "
                          "equal to 1",
    "tinyset -s colour=red": "peerbench data pull tinyset: dataset field 'colour': Extra inputs are not permitted",
    "tinyset -s venues=[]": "peerbench data pull tinyset: dataset field 'venues': List should have at least 1 item "
                            "after validation, not 0",
}


@pytest.mark.parametrize("args", list(PULL_ERRORS))
def test_data_pull_errors_name_the_dataset_field_or_flag(env, args):
    assert error(["data", "pull", *args.split()], env) == f"Error: {PULL_ERRORS[args]}\n"


def test_data_info_lists_the_plugins_rows_beside_the_built_ins(env, isolated_home):
    ok(["data", "pull", "tinyset", "--venues", "alpha,beta", "-s", "limit=2"], env)
    root = isolated_home / "tinyset"
    rows = json.loads(ok(["data", "info", "--json"], env))
    mine = [r for r in rows["datasets"] if r["dataset"] in ("tinyset", "bareset")]
    assert mine == [
        {"dataset": "bareset", "what": None, "where": None, "how_many": None, "size_bytes": 0},
        *({"dataset": "tinyset", "what": venue, "where": str(root / venue), "how_many": "2 papers",
           "size_bytes": sum(p.stat().st_size for p in (root / venue).glob("*.json"))} for venue in ("alpha", "beta"))]
    names = [r["dataset"] for r in rows["datasets"]]
    assert sorted(set(names), key=names.index) == ["aiscientist", "bareset", "hf", "jsonl", "openreview", "peerread", "tinyset"]
    assert rows["response_cache"] == {"path": str(isolated_home / "responses.sqlite"), "size_bytes": None}
    table = ok(["data", "info"], env).splitlines()
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in table if line.startswith("│ tinyset")]
    assert cells == [["tinyset", "alpha", "2 papers", "0.0", str(root / "alpha")],
                     ["tinyset", "beta", "2 papers", "0.0", str(root / "beta")]]
    assert [line.strip("│ ").split("│")[1].strip() for line in table if line.startswith("│ bareset")] == [
        "(nothing on disk known)"]
    assert table[-1] == f"response cache: {isolated_home / 'responses.sqlite'} (empty)"


def test_validate_data_asks_the_dataset_that_claims_the_path(env, isolated_home, tmp_path):
    ok(["data", "pull", "tinyset", "--venues", "alpha,beta", "-s", "limit=2"], env)
    root = isolated_home / "tinyset"
    assert ok(["validate-data", str(root)], env) == f"ok: 4 paper(s) checked in {root} (tinyset)\n"
    (root / "beta" / "p1.json").write_text(json.dumps({"id": "p1", "title": ""}))
    done = run_cli(["validate-data", str(root)], env)
    assert (done.returncode, done.stdout, done.stderr) == (
        2, f"{root / 'beta' / 'p1.json'}: field 'title' missing or empty\n", "1 problem(s) in 4 paper(s)\n")
    papers = tmp_path / "papers.jsonl"
    papers.write_text(json.dumps({"id": 1, "title": "T", "body": "text"}) + "\n")
    assert ok(["validate-data", str(papers)], env) == f"ok: 1 paper(s) checked in {papers} (jsonl)\n"
    assert error(["validate-data", str(root), "--dataset", "bareset"], env) == \
        f"Error: {root}: dataset 'bareset' cannot validate files (it defines no validate())\n"


def test_validate_data_without_one_claimant_asks_for_dataset(env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert error(["validate-data", str(empty)], env) == (
        f"Error: {empty}: no dataset recognises this folder (asked: aiscientist, bareset, hf, jsonl, openreview, peerread, tinyset); "
        "name one with --dataset\n")
    both = tmp_path / "both"
    (both / "v" / "dev" / "reviews").mkdir(parents=True)
    (both / "TINYSET").write_text("")
    assert error(["validate-data", str(both)], env) == \
        f"Error: {both}: this folder looks like 'peerread' and 'tinyset'; name one with --dataset\n"
    assert ok(["validate-data", str(both), "--dataset", "tinyset"], env) == \
        f"ok: 0 paper(s) checked in {both} (tinyset)\n"
    assert error(["validate-data", str(both), "--dataset", "tinyst"], env).startswith(
        "Error: unknown dataset 'tinyst' (did you mean 'tinyset'?)")


def test_select_values_are_yaml_and_list_fields_take_commas_repeats_and_numbers():
    from pydantic import BaseModel

    from peerbench.cli.data import selection

    class Args(BaseModel):
        ids: list[str] | None = None
        limit: int | None = None
        strict: bool = False

    assert selection(["ids=[37, 94]", "ids=x, y", "limit=5", "strict=yes", "ids=7"], Args) == {
        "ids": ["37", "94", "x", "y", "7"], "limit": 5, "strict": True}
    assert selection(["ids=null", "limit="], Args) == {"ids": None, "limit": ""}
