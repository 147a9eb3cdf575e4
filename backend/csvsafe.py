"""Spreadsheet-safe CSV cells: a text cell that a spreadsheet would run as a formula is written as text.

Exports hold what participants and researchers typed (external ids, recruitment fields, client info, dataset
labels). Excel, LibreOffice and Google Sheets treat a cell that starts with `=`, `+`, `-` or `@` as a formula
(and tab / carriage return as the start of one, after trimming), so an id like `=HYPERLINK(...)` would run
when a researcher opens the file. OWASP's advice, followed here: prefix such a text cell with a single quote,
which the spreadsheet shows as text and does not display. Numbers are left alone: a negative number is data,
and only text reaches a formula parser as typed.
"""

from __future__ import annotations

from typing import Any

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with a leading `'` when it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
