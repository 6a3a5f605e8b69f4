"""What a deployment ships: `func azure functionapp publish` and `azd deploy` zip the project folder
minus what `.funcignore` names (gitignore syntax). Development-only code must not be in it, and what
is in it must run without them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec

ROOT = Path(__file__).resolve().parents[2]
DEVELOPMENT_ONLY = (
    "sandbox/",
    "tests/",
    "bench/",
    "devtools/",
    "samples/",
    "infra/",
    "node_modules/",
    ".venv/",
)


def packaged() -> list[str]:
    """Every file the deployment package would hold, as it stands in this working tree (virtualenvs,
    node_modules and caches included, as they are on a developer's machine or in CI)."""
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    files: list[str] = []
    for folder, dirs, names in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if d != ".git" and not spec.match_file(prefix + d + "/")]
        files += [prefix + n for n in names if not spec.match_file(prefix + n)]
    return sorted(files)


def test_the_package_holds_the_app_and_nothing_development_only():
    files = packaged()
    assert {"function_app.py", "host.json", "requirements.txt", "payments/__init__.py"} <= set(files)
    assert "payments/outbound/client.py" in files and "payments/ledger/protocol.py" in files
    leaked = [
        f for f in files if f.startswith(DEVELOPMENT_ONLY) or "/__pycache__/" in f or f.endswith(".pyc")
    ]
    assert leaked == []
    assert not any(f.startswith("sandbox") or "/sandbox" in f for f in files)
    assert "local.settings.json" not in files  # a developer's settings never ship


def test_the_package_runs_without_the_development_code(tmp_path):
    """Unpacked alone, the app indexes its functions, and the command line says the sandbox is absent."""
    for name in packaged():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PAYMENTS_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    indexed = run(
        "-c",
        "import function_app, sys; print(sorted(f.get_function_name() for f in function_app.app.get_functions())); print('sandbox' in sys.modules)",
    )
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stdout.split("\n")[:2] == [
        "['batch_status', 'customer_payments', 'inbox_redrive', 'journal_post', 'ledger_purge', 'openapi', "
        "'payment_file_drop', "
        "'post_priority', 'post_work', 'signed_batch_status', 'signed_customer_payments', 'work_redrive']",
        "False",
    ]
    posted = run("-m", "payments", "post", "whatever.csv", "--sandbox")
    assert posted.returncode == 2
    assert "the development sandbox is not here" in posted.stderr and "never deployed" in posted.stderr
    assert "Traceback" not in posted.stderr
