"""The simulated participants of a study run: each enrols over HTTP, answers the detection trials, and paints
each annotation image as one simulated annotator (`sipat.predictor.annotators`) paints that image's exact
object mask (grown or shrunk, parts missed, stray strokes, ragged edges).

Why person j is the same in both studies: the pools then differ only in which images they give people to
paint, never in who paints, so "active minus random" at a number of paintings is a paired difference.
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from backend.api import API_PREFIX as API
from backend.storage import sha256_hex
from benchmarks.study_loop.world import World
from sipat.predictor.annotators import paint, random_profiles
from sipat.stimuli import to_png


class Population:
    """Person j's painting of every training image, made once (seeded by the run's seed and j)."""

    def __init__(self, masks: torch.Tensor, seed: int) -> None:
        self.masks, self.seed = masks, seed
        self._paintings: dict[int, torch.Tensor] = {}

    def painting(self, person: int, index: int) -> bytes:
        """Person `person`'s painting of training image `index`, as the grayscale PNG the page would send."""
        if person not in self._paintings:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + person)
            profile = random_profiles(1, generator=g)[0]
            self._paintings[person] = paint(self.masks, profile, generator=g)
        u8 = (self._paintings[person][index, 0] * 255).to(torch.uint8).numpy()
        return to_png(u8[..., None])


def _ok(reply: Any, what: str) -> Any:
    if reply.status_code not in (200, 201):
        raise RuntimeError(f"{what}: HTTP {reply.status_code}: {reply.text[:300]}")
    return reply


def take_part(world: World, slug: str, people: Population, person: int) -> list[int]:
    """One whole session of `person` in study `slug`; the training-image indices they painted, in order."""
    client = world.client
    token = _ok(client.post(f"{API}/studies/{slug}/sessions", json={"consent": True}), "enrol").json()["token"]
    painted: list[int] = []
    for _ in range(1_000):
        trial = _ok(client.get(f"{API}/sessions/{token}/next"), "next trial").json()
        if trial["done"]:
            return painted
        base = f"{API}/sessions/{token}/trials/{trial['trial_id']}"
        if trial["question"] == "annotate":
            image = _ok(client.get(trial["image_url"]), "image").content
            index = world.by_sha.get(sha256_hex(image))
            if index is None:
                raise RuntimeError("an annotation trial showed an image that is not a training image")
            mask = base64.b64encode(people.painting(person, index)).decode()
            _ok(client.post(f"{base}/annotation", json={"mask_png": mask, "duration_ms": 9000.0}), "painting")
            painted.append(index)
        else:
            body = {"judgment": "clean", "confidence": 2, "rt_ms": 900.0}
            _ok(client.post(f"{base}/response", json=body), "response")
    raise RuntimeError(f"the session of person {person} in {slug} did not end")
