"""What every command shares: what it echoes made printable, and its settings or a clear exit."""

from __future__ import annotations

from ..errors import SettingsError
from ..settings import Settings, load_settings

# Control characters (C0, DEL, C1) and bidirectional overrides in anything echoed (file names, CSV
# header cells, the target's messages) are shown escaped: printed raw they would drive the terminal.
_ESCAPES = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(text: object) -> str:
    """`text` with every control character written as its escape."""
    return str(text).translate(_ESCAPES)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        if overrides:
            return Settings(**overrides)  # type: ignore[arg-type]
        return load_settings()
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    except ValueError as exc:  # pydantic's report for explicit overrides
        raise SystemExit(f"error: invalid settings: {exc}") from None
