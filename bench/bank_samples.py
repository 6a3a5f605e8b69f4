"""Every third-party bank statement sample read with our readers, as a Markdown table for the issue note.

Run: .venv/bin/python -m bench.bank_samples [samples directory]
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from payments.bank import HEAD_BYTES, kind_of, reader_for
from payments.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples" / "bank"
SUFFIXES = (".xml", ".sta", ".bai2")


def _ties(statements) -> str:
    """Our sums against the file's own totals, per statement: matches, differs (both values), or none."""
    parts = []
    if len(statements) > 3 and all(
        s.checks and all("matches" in c for c in s.checks.values()) for s in statements
    ):
        return f"all {len(statements)} statements match (opening + credits - debits = closing)"
    for n, s in enumerate(statements, start=1):
        checks = [f"{name}: {text}" for name, text in s.checks.items() if "gives no" not in text]
        if not checks:
            parts.append(f"{n}: no totals in file")
        elif all("matches" in c for c in checks):
            parts.append(f"{n}: matches ({'; '.join(checks)})")
        else:
            parts.append(f"{n}: differs ({'; '.join(c for c in checks if 'matches' not in c)})")
    return "<br>".join(parts) if parts else "no statements"


def row(path: Path, root: Path) -> list[str]:
    data = path.read_bytes()
    kind = kind_of(data[:HEAD_BYTES])
    name = str(path.relative_to(root))
    if kind is None:
        return [name, "not detected", "", "", "", "", "", "", "", ""]
    try:
        reader = reader_for(kind, io.BytesIO(data), path.name)
        txs = list(reader.transactions())
    except InputError as exc:
        return [name, kind, "", "", "", "", "", "", "", f"**InputError**: {exc}"]
    entries = sum(s.entries for s in reader.statements)
    credits = [t for t in txs if t.skip_reason is None]
    sums: dict[str, Decimal] = {}
    for t in credits:
        sums[t.currency] = sums.get(t.currency, Decimal(0)) + (t.amount or Decimal(0))
    skipped = Counter(t.skip_reason for t in txs if t.skip_reason)
    review = sum(1 for t in txs if t.problem)
    return [
        name,
        reader.format,
        str(len(reader.statements)),
        str(entries),
        str(len(txs)),
        f"{len(credits)}" + (f" ({review} for review)" if review else ""),
        ", ".join(f"{format(v, 'f')} {c}" for c, v in sums.items()) or "–",
        ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items())) or "–",
        _ties(reader.statements),
        "",
    ]


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else SAMPLES
    if not root.is_dir():
        print(f"no samples at {root}", file=sys.stderr)
        return 2
    header = [
        "file",
        "format",
        "statements",
        "entries",
        "transactions",
        "credits (booked, non-reversed)",
        "sum of credits",
        "skipped by reason",
        "ties out",
        "error",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES):
        cells = [c.replace("|", "\\|") for c in row(path, root)]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
