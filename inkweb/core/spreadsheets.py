"""CSV cells that spreadsheet programs show as text instead of running as formulas."""

from __future__ import annotations

# Spreadsheet programs run a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_cell(value: object) -> str:
    """Return `value` as CSV cell text, with a leading apostrophe when it could be a formula.

    None becomes an empty cell. The apostrophe makes spreadsheets show the text as typed.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text
