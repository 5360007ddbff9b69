"""What starting a command costs: `python -m jobs --help`, a command's `--help`, and
`import tracking.receiver` (what a receiver worker loads), each in a fresh interpreter.

Prints, per start-up, the median wall and CPU time (user + system) of --runs runs and the
modules it loaded, with whether pandas, Streamlit, APScheduler or the dashboard were among
them. CPU time is the steadier figure on a busy machine. --tree runs the same probes against
another checkout of the project (e.g. an older commit unpacked with `git archive`).

    python bench/startup_bench.py [--runs 7] [--tree PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBES = {
    "python -m jobs --help": ["jobs", "--help"],
    "python -m jobs cleanup --help": ["jobs", "cleanup", "--help"],
    "import tracking.receiver": None,
}
WATCHED = ("pandas", "streamlit", "apscheduler", "dashboard")
# Runs the probe in-process, then reports what it loaded on its last line.
COUNT = """import runpy, sys
argv = {argv!r}
if argv:
    sys.argv = argv
    try:
        runpy.run_module("jobs", run_name="__main__")
    except SystemExit:
        pass
else:
    import tracking.receiver
print("LOADED", len(sys.modules), *[name for name in {watched!r} if name in sys.modules])
"""


def timed(argv: list[str], tree: Path, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=tree, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout to measure (default: this one)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    print(f"{tree} ({args.runs} runs each, medians)")
    for label, jobs_argv in PROBES.items():
        argv = ["-m", *jobs_argv] if jobs_argv else ["-c", "import tracking.receiver"]
        walls, cpus = zip(*(timed(argv, tree, env) for _ in range(args.runs)), strict=True)
        probe = COUNT.format(argv=jobs_argv or [], watched=WATCHED)
        out = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True)
        loaded = next(line for line in reversed(out.stdout.splitlines()) if line.startswith("LOADED")).split()
        print(f"  {label:30s} wall {statistics.median(walls):5.2f} s  cpu {statistics.median(cpus):5.2f} s  "
              f"{loaded[1]:>5} modules  heavy: {', '.join(loaded[2:]) or 'none'}")


if __name__ == "__main__":
    main()
