"""Cold start: what `import function_app` costs, and how much of that is our own code.

A Functions worker imports `function_app` before its first invocation. In fresh interpreters under
`python -X importtime` (the median of `--repeats` runs each), this prints the time `import function_app`
takes, the part of it spent in the modules it loads other than ours (third-party and standard library),
and the part spent running our own modules' bodies (their self time: pydantic building our models
counts as ours). It also names how many of our modules a cold start loads, and whether the bank
statement readers and the Azure Monitor distro were loaded (they should wait for a statement, and for
telemetry being switched on). `-X importtime` adds a little to every import, the same on both sides.

Run: `.venv/bin/python -m bench.imports` (`--root` another checkout of the project, `--repeats`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {
    "bank readers": ("schwifty", "pycountry", "mt940", "bai2"),
    "Azure Monitor distro": ("azure.monitor.opentelemetry",),
}

def _importtime(root: Path) -> tuple[float, float, set[str]]:
    """One fresh interpreter importing function_app under `-X importtime`: the whole import's time, the
    time our own modules' bodies took (their self time: what runs in them, pydantic building our models
    included, without the modules they import), and every module loaded."""
    env = {"PATH": "/usr/bin:/bin"}  # no settings: as a fresh worker
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    total = ours = 0.0
    loaded: set[str] = set()
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        name = name.strip()
        loaded.add(name)
        if name == "function_app":
            total = int(cumulative) / 1e6
        if name == "function_app" or name.split(".")[0] == "payments":
            ours += int(own) / 1e6
    return total, ours, loaded


def measure(roots: list[Path], repeats: int) -> list[dict]:
    """Each checkout's figures; their runs take turns (A, B, A, B, ...), so a machine that speeds up or
    slows down meanwhile weighs on every checkout alike."""
    for root in roots:
        _importtime(root)  # bytecode compiled and the disk cache warm: every run below starts alike
    runs: dict[Path, list[tuple[float, float, set[str]]]] = {root: [] for root in roots}
    for _ in range(repeats):
        for root in roots:
            runs[root].append(_importtime(root))
    return [_figures(root, runs[root]) for root in roots]


def _figures(root: Path, runs: list[tuple[float, float, set[str]]]) -> dict:
    total = statistics.median(r[0] for r in runs)
    ours = statistics.median(r[1] for r in runs)
    loaded = runs[-1][2]
    mine = sorted(n for n in loaded if n.split(".")[0] == "payments")
    return {
        "root": str(root),
        "import function_app (ms)": round(total * 1000, 1),
        "the modules it loads, ours excepted (ms)": round((total - ours) * 1000, 1),
        "our own modules (ms)": round(ours * 1000, 1),
        "our modules loaded": len(mine) + 1,
        **{
            f"{what} loaded": ", ".join(m for m in names if m in loaded) or "no"
            for what, names in HEAVY.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    results = measure([root.resolve() for root in (args.root or [ROOT])], args.repeats)
    print("| figure | " + " | ".join(r["root"] for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for key in results[0]:
        if key != "root":
            print(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
