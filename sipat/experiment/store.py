"""Finished runs on disk: ``runs/<run>.json`` written atomically, read back on resume and compared by settings."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sipat.checkpoints import read_checkpoint
from sipat.experiment.config import ExperimentConfig, RunSpec, run_settings


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # absent, or half-written by a killed process: run it again


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _value(payload: dict[str, Any], attack: str, masked: bool, eps: float | None) -> float:
    if eps is None:
        return payload["clean_acc"]
    grid = payload["robust_acc_masked" if masked else "robust_acc"] or {}
    return grid.get(attack, {}).get(f"{eps:.6g}", math.nan)


def arm_name(payload: dict[str, Any]) -> str:
    """The arm of a finished run (``pgd_at@eps=0.5x``); runs written before arms existed name the method only."""
    return payload.get("arm") or payload["method"]


def _unperturbed(p: dict[str, Any]) -> float:
    return p["clean_share"] if p["method"] == "clean_mix" else (p["salient_share"] or 0.0)


def run_path(out: Path, run: RunSpec) -> Path:
    return out / "runs" / f"{run.run_id}.json"


def checkpoint_path(out: Path, run: RunSpec) -> Path:
    """Where a run's training state lives while it trains (removed when it finishes)."""
    return out / "checkpoints" / f"{run.run_id}.pt"


def finished_runs(cfg: ExperimentConfig, out: Path, runs: Sequence[RunSpec]) -> dict[str, dict[str, Any]]:
    """The planned runs whose result JSON exists with the same settings; ValueError for one with other settings,
    and for a half-trained run (its checkpoint) with other settings, before anything trains."""
    done = {}
    for run in runs:
        payload = _read_json(run_path(out, run))
        want = run_settings(cfg, run)
        if payload is None:
            check_checkpoint(checkpoint_path(out, run), want)
            continue
        if payload.get("settings") != want:
            raise _other_settings(run_path(out, run), "was", payload.get("settings") or {}, want, "redo the run")
        done[run.run_id] = payload
    return done


def _other_settings(path: Path, held: str, stored: dict[str, Any], want: dict[str, Any], redo: str) -> ValueError:
    """The one refusal of a file made with other settings (a finished run's JSON, a half-trained checkpoint)."""
    return ValueError(
        f"{path} {held} made with other settings (they differ in {', '.join(_diff(stored, want))}); "
        f"pass another --out for the new settings, or delete that file to {redo}"
    )


def check_checkpoint(path: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a half-trained run made with other settings. Why here and not in `sipat.training`: its
    resume check compares the training config, but an experiment's maps (annotators, fill, choice, controls)
    are settings of the run, not of the config, so a checkpoint trained on other maps would resume silently.
    A checkpoint written before runs stored their settings in it resumes as before."""
    if not path.is_file():
        return
    stored = read_checkpoint(path).get("meta", {}).get("settings")
    if stored is not None and stored != settings:
        raise _other_settings(path, "holds a half-trained run", stored, settings, "train the run anew")
