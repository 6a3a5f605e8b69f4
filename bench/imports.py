"""Cold start: what `import function_app` costs, and how much of that is our own code.

A Functions worker imports `function_app` before its first invocation. In fresh interpreters (the
median of `--repeats` runs each), this prints the wall time of `import function_app`, the wall time of
importing only the third-party packages that import loads (the same ones, in a fresh interpreter),
and the difference: the cost of our own modules. It also names our modules loaded and whether the bank
statement readers and the Azure Monitor distro were loaded (they should wait for a statement, and for
telemetry being switched on).

Run: `.venv/bin/python -m bench.imports` (`--root` another checkout of the project, `--repeats`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {
    "bank readers": ("schwifty", "pycountry", "mt940", "bai2"),
    "Azure Monitor distro": ("azure.monitor.opentelemetry",),
}

_PROBE = """
import json, sys, sysconfig, time
t = time.perf_counter()
import function_app
elapsed = time.perf_counter() - t
site = sysconfig.get_paths()["purelib"]
third = [n for n, m in list(sys.modules.items())  # in the order they were loaded
         if (getattr(m, "__file__", None) or "").startswith(site) and n != "_distutils_hack"]
ours = sorted(n for n in sys.modules if n == "function_app" or n.split(".")[0] in ("payments",))
print(json.dumps({"elapsed": elapsed, "third": third, "ours": ours, "loaded": sorted(sys.modules)}))
"""

_DEPS = """
import importlib, json, time
t = time.perf_counter()
for name in {names!r}:
    importlib.import_module(name)
print(json.dumps({{"elapsed": time.perf_counter() - t}}))
"""


def _run(code: str, root: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": ""}  # no settings: as a fresh worker
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(root: Path, repeats: int) -> dict:
    _run(_PROBE, root)  # bytecode compiled and the disk cache warm: every run below starts alike
    probes = [_run(_PROBE, root) for _ in range(repeats)]
    third = probes[-1]["third"]
    deps = [_run(_DEPS.format(names=third), root)["elapsed"] for _ in range(repeats)]
    app = statistics.median(p["elapsed"] for p in probes)
    alone = statistics.median(deps)
    loaded = set(probes[-1]["loaded"])
    return {
        "root": str(root),
        "import function_app (ms)": round(app * 1000, 1),
        "its third-party packages alone (ms)": round(alone * 1000, 1),
        "our own code (ms)": round((app - alone) * 1000, 1),
        "third-party modules": len(third),
        "our modules loaded": len(probes[-1]["ours"]),
        **{
            f"{what} loaded": ", ".join(m for m in names if m in loaded) or "no"
            for what, names in HEAVY.items()
        },
        "third-party packages": ", ".join(sorted({n.split(".")[0] for n in third})),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    results = [measure(root.resolve(), args.repeats) for root in (args.root or [ROOT])]
    print("| figure | " + " | ".join(r["root"] for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for key in results[0]:
        if key != "root":
            print(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
