#!/usr/bin/env bash
# Mutation testing of peerbench's core (issue 26; results in docs/testing.md). Not part of CI.
#
#   benchmarks/mutation.sh            a seeded sample of 6 mutants per module (seed 26)
#   benchmarks/mutation.sh 20 7       20 per module, seed 7
#   benchmarks/mutation.sh all        every mutant (hours on 2 cores)
#
# mutmut 3 ([tool.mutmut] in pyproject.toml) runs in its own venv (.venv-mut, which sees .venv's
# packages) on a copy of the tree in $PEERBENCH_MUTATION_DIR (default /tmp/peerbench-mutation):
# mutants are written under that copy's mutants/, never into src/. Per mutant, only the tests that
# called the mutated function run, in a fresh forkserver process (so import-time code is mutated
# too). MAX_CHILDREN (default 2) bounds the parallel workers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PER_MODULE=${1:-6}
SEED=${2:-26}
WORK=${PEERBENCH_MUTATION_DIR:-${TMPDIR:-/tmp}/peerbench-mutation}
MUT="$ROOT/.venv-mut"

if [ ! -x "$MUT/bin/mutmut" ]; then
  "$ROOT/.venv/bin/python" -m venv "$MUT"
  "$MUT/bin/pip" install --quiet "mutmut==3.8.1"
fi
SITE=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
MUT_SITE=$("$MUT/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$SITE')" > "$MUT_SITE/peerbench-venv.pth"

rm -rf "$WORK" && mkdir -p "$WORK"
(cd "$ROOT" && git ls-files -co --exclude-standard -z) | (cd "$ROOT" && "$MUT/bin/python" -c '
import shutil, sys
from pathlib import Path
for name in sys.stdin.buffer.read().decode().split("\0"):
    if name.split("/")[0] in {"src", "tests", "tasks", "plugins", "examples", "pyproject.toml"} and Path(name).is_file():
        target = Path(sys.argv[1]) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(name, target)
' "$WORK")
ln -s "$ROOT/../shared" "$WORK/shared"  # tests read ../shared from the mutants/ copy of the tree
cd "$WORK"
# A test that starts the CLI in a subprocess runs the unmutated src/ (mutmut cannot trace it): only
# in-process tests can kill a mutant.
unset PYTHONPATH

"$MUT/bin/python" - "$PER_MODULE" "$SEED" sample.txt > generate.log <<'EOF'
"""Generate every mutant, then print a seeded sample of their names, PER_MODULE per module."""
import random
import sys
from collections import defaultdict

from mutmut.__main__ import SourceFileMutationData, copy_also_copy_files, copy_src_dir, create_mutants
from mutmut.utils.file_utils import walk_mutatable_files

copy_src_dir()
copy_also_copy_files()
create_mutants(2)
by_module = defaultdict(list)
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    by_module[str(path)] = sorted(data.exit_code_by_key)
per_module, rng = sys.argv[1], random.Random(int(sys.argv[2]))
with open(sys.argv[3], "w") as out:
    for module, names in sorted(by_module.items()):
        print(f"{module}: {len(names)} mutants", file=sys.stderr)
        picked = names if per_module == "all" else rng.sample(names, min(int(per_module), len(names)))
        out.write("".join(f"{name}\n" for name in picked))
EOF

if [ "$PER_MODULE" = all ]; then NAMES=/dev/null; else NAMES=sample.txt; fi
xargs -a "$NAMES" "$MUT/bin/mutmut" run --max-children "${MAX_CHILDREN:-2}" > run.log 2>&1 || true
"$MUT/bin/python" - sample.txt <<'EOF' | tee report.txt
"""Per-module counts of the sampled mutants, and every survivor's diff (mutmut show NAME)."""
import os
import subprocess
import sys
from collections import Counter, defaultdict

from mutmut.__main__ import SourceFileMutationData
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

wanted = set(open(sys.argv[1]).read().split())
status, module_of = {}, {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        if name in wanted:
            status[name], module_of[name] = status_by_exit_code[code], str(path)
counts = defaultdict(Counter)
for name, state in status.items():
    counts[module_of[name]][state] += 1
for module, c in sorted(counts.items()):
    print(f"{module}: {dict(c)}")
total = Counter(status.values())
print(f"all: {dict(total)}; killed {total['killed']} of {len(status)}")
for name in sorted(n for n, s in status.items() if s != "killed"):
    print(f"\n## {status[name]}: {name}")
    print(subprocess.run([os.path.join(os.path.dirname(sys.executable), "mutmut"), "show", name], capture_output=True, text=True).stdout)
EOF
echo "report: $WORK/report.txt (log: $WORK/run.log; ${SECONDS}s)"
