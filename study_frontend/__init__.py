"""The participant front end: Jinja2 templates and static ES modules/CSS, served by `backend.web`."""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
