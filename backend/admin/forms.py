"""Reading the admin forms: text fields into the values the services' schemas validate.

Only the shape is handled here (numbers, lists, check boxes, empty = not given); what is allowed is decided by
the same pydantic schemas and services as the research API, and their messages are shown on the form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from backend import vocabulary
from backend.services.errors import InvalidInputError


def parse_eps_list(text: str) -> list[float]:
    """Comma- or space-separated eps values ("0, 2/255, 8/255") by `backend.vocabulary.parse_eps_list`, the parser
    of the CLI and the experiments (sorted, unique; ValueError for an empty list, a bad, negative or > 1 value)."""
    return vocabulary.parse_eps_list(text)


def optional(form: dict[str, str], name: str) -> str | None:
    """The stripped field, or None when it is missing or empty."""
    value = form.get(name, "").strip()
    return value or None


def checkbox(form: dict[str, str], name: str) -> bool:
    return form.get(name, "").strip().lower() in ("on", "true", "1", "yes")


def int_field(form: dict[str, str], name: str, *, label: str | None = None) -> int | None:
    value = optional(form, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"{label or name}: {value!r} is not a whole number") from None


def float_field(form: dict[str, str], name: str, *, label: str | None = None, eps: bool = False) -> float | None:
    value = optional(form, name)
    if value is None:
        return None
    try:
        return vocabulary.parse_eps(value, label or name) if eps else float(value)
    except ValueError as exc:
        raise InvalidInputError(str(exc) if eps else f"{label or name}: {value!r} is not a number") from None


def given(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the entries that are None (left empty on the form: the schema's default applies)."""
    return {k: v for k, v in values.items() if v is not None}


def validation_message(exc: ValidationError, prefix: str = "", labels: Mapping[str, str] | None = None) -> str:
    """A pydantic error as one line naming each field, like the research API's 422 messages; a field whose
    dotted location is in `labels` is named by its label on the form instead ("Main trials", not
    "config.n_main"), so the researcher finds the box to fix."""
    labels = labels or {}

    def name(loc: tuple[int | str, ...]) -> str:
        dotted = ".".join(str(p) for p in loc)
        return labels.get(dotted) or f"{prefix}{dotted or 'form'}"

    return "; ".join(f"{name(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False))
