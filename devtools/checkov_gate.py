"""Run checkov over infra/ and fail on any failed check *or parsing error*.

checkov exits 0 when it cannot parse a file (it only lists it under `parsing_errors`), so a template
it cannot read would pass silently. graph-permission.bicep is left out on purpose: its `extension`
statement (Microsoft Graph Bicep extension) is beyond checkov's parser; tests/test_infra.py parses
it with the current pycep-parser instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED = ["graph-permission.bicep", "api-registration.bicep"]


def main(checkov: str) -> int:
    cmd = [
        checkov,
        "-d",
        "infra",
        "--framework",
        "bicep",
        "--skip-download",
        "--quiet",
        "--compact",
        "-o",
        "json",
    ]
    for path in EXCLUDED:
        cmd += ["--skip-path", path]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    try:
        reports = json.loads(run.stdout)
    except json.JSONDecodeError:
        print(run.stdout[-2000:], run.stderr[-2000:], sep="\n", file=sys.stderr)
        print("checkov: no JSON report", file=sys.stderr)
        return 1
    reports = reports if isinstance(reports, list) else [reports]
    problems = 0
    for report in reports:
        summary = report.get("summary", {})
        results = report.get("results", {})
        for failed in results.get("failed_checks", []):
            problems += 1
            print(
                f"FAILED {failed['check_id']} {failed['check_name']} {failed['file_path']} {failed['resource']}"
            )
        for path in results.get("parsing_errors", []) or summary.get("parsing_errors_list", []):
            problems += 1
            print(f"PARSING ERROR {path}")
        if summary.get("parsing_errors"):
            problems += 1
            print(f"checkov could not parse {summary['parsing_errors']} file(s)")
        if not summary.get("resource_count"):
            problems += 1
            print("checkov scanned no resources")
        for skipped in results.get("skipped_checks", []):
            reason = (skipped.get("check_result") or {}).get("suppress_comment", "").strip(": ")
            if not reason:
                problems += 1
                print(f"SUPPRESSED WITHOUT A REASON {skipped['check_id']} {skipped['resource']}")
        print(
            f"checkov bicep: {summary.get('passed')} passed, {summary.get('failed')} failed, "
            f"{summary.get('skipped')} suppressed with reasons, {summary.get('parsing_errors')} parsing errors, "
            f"{summary.get('resource_count')} resources"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".checkov-venv" / "bin" / "checkov")))
