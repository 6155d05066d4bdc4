"""gcov line coverage of runtime_c reached by the direct kernel tests.

Usage::

    python tools/coverage.py                   # table and total; exit 1 if the total is below 95 %
    python tools/coverage.py --fail-under 100 --missing
    python tools/coverage.py --tests tests/test_kernels_forward.py
    python tools/coverage.py -- -k conv        # extra arguments after -- go to pytest

It sets ``TTE_GCOV_DIR`` to a fresh temporary directory, so that ``tests/cruntime.py`` builds the runtime there
with ``--coverage -O0``, and runs ``python -m pytest -q`` on every ``tests/test_kernels_*.py`` (the direct kernel
tests: forward, train, elementwise).  It then runs ``gcov --json-format --stdout`` on the notes files
the build left (gcc names them ``libtte_runtime.so-<source>.gcno`` when compiling and linking in one step) and
prints, for every file of ``runtime_c/src`` and every runtime header gcov attributes inline-function lines to,
the executable lines, the lines executed and the percentage, then the total.  A header line counts as executed
when any translation unit executed it.  Files outside ``runtime_c`` are ignored.

Exit status: 0 when the total reaches ``--fail-under`` (default 95), 1 when it does not, 2 when pytest or gcov
could not run (test failures alone are reported but do not change the status).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_c"
TEST_FILES = tuple(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_kernels_*.py")))


def run_tests(gcov_dir: pathlib.Path, tests: list[str], extra: list[str]) -> int:
    """Run the direct kernel tests with an instrumented runtime built in ``gcov_dir``; pytest's exit status."""
    files = [f for f in tests if (ROOT / f).exists()]
    if not files:
        sys.exit("no kernel test file found")
    env = dict(os.environ, TTE_GCOV_DIR=str(gcov_dir))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, *extra]
    print("$", " ".join(cmd[2:]), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    print("\n".join(summary + proc.stdout.strip().splitlines()[-1:]))
    return proc.returncode


def line_counts(gcov_dir: pathlib.Path) -> dict[pathlib.Path, dict[int, int]]:
    """file -> {line: execution count} over every translation unit, for files under runtime_c."""
    notes = sorted(str(p) for p in gcov_dir.glob("*.gcno"))
    if not notes:
        sys.exit(f"no .gcno files in {gcov_dir}: was the runtime built with TTE_GCOV_DIR?")
    proc = subprocess.run(["gcov", "--json-format", "--stdout", *notes], cwd=gcov_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        sys.exit(2)
    counts: dict[pathlib.Path, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    decoder, text, pos = json.JSONDecoder(), proc.stdout, 0
    while pos < len(text):  # one JSON document per notes file
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        for f in doc["files"]:
            path = (pathlib.Path(doc["current_working_directory"]) / f["file"]).resolve()
            if RUNTIME not in path.parents:
                continue
            for line in f["lines"]:
                counts[path][line["line_number"]] += line["count"]
    return counts


def table(counts: dict[pathlib.Path, dict[int, int]], missing: bool) -> float:
    """Print the per-file table; return the total percentage."""
    files = set(counts) | set((RUNTIME / "src").glob("*.c"))
    rows, total, hit = [], 0, 0
    for path in sorted(files, key=lambda p: (p.suffix != ".c", str(p))):
        lines = counts.get(path, {})
        n, e = len(lines), sum(1 for c in lines.values() if c > 0)
        total, hit = total + n, hit + e
        rows.append((str(path.relative_to(RUNTIME)), n, e, 100.0 * e / n if n else 100.0,
                     sorted(ln for ln, c in lines.items() if c == 0)))
    width = max(len(r[0]) for r in rows)
    print(f"{'file':<{width}}  {'lines':>5}  {'exec':>5}  {'%':>6}")
    for name, n, e, pct, unexecuted in rows:
        tail = f"  missing: {', '.join(map(str, unexecuted))}" if missing and unexecuted else ""
        print(f"{name:<{width}}  {n:>5}  {e:>5}  {pct:>6.1f}{tail}")
    pct = 100.0 * hit / total if total else 100.0
    print(f"{'TOTAL':<{width}}  {total:>5}  {hit:>5}  {pct:>6.1f}")
    return pct


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fail-under", type=float, default=95.0, help="minimum total line coverage, %% (95)")
    parser.add_argument("--missing", action="store_true", help="list the line numbers never executed")
    parser.add_argument("--tests", nargs="+", default=list(TEST_FILES), metavar="FILE",
                        help="test files to run (default: every tests/test_kernels_*.py)")
    parser.add_argument("--keep", action="store_true", help="keep the build / gcov directory and print its path")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if shutil.which("gcov") is None:
        print("gcov not found", file=sys.stderr)
        return 2
    gcov_dir = pathlib.Path(tempfile.mkdtemp(prefix="tte_gcov_"))
    try:
        status = run_tests(gcov_dir, args.tests, extra)
        if status not in (0, 1):  # interrupted, internal error, usage error, no tests or a crash
            print(f"pytest exited with status {status}", file=sys.stderr)
            return 2
        pct = table(line_counts(gcov_dir), args.missing)
    finally:
        if args.keep:
            print(f"gcov files kept in {gcov_dir}")
        else:
            shutil.rmtree(gcov_dir, ignore_errors=True)
    if pct < args.fail_under:
        print(f"total coverage {pct:.1f} % is below {args.fail_under:g} %")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
