"""One participant's trial list: practice, main detection trials with catch trials, then annotation.

Counterbalancing (the main phase):

* The study's source images are put in one seeded order (depends on ``config.seed`` only).
* Participants come in *blocks* of ``L = len(eps_levels)`` consecutive indices (0-based, in enrollment order):
  block ``b`` holds participants ``b*L .. b*L + L-1``. Everyone in a block sees the same ``n_main`` images, a
  window of the study order starting at ``(b * n_main) % N`` (wrapping around), so successive blocks rotate
  through the images and every image is used equally often (to within one block) when ``n_main < N``.
* Image ``k`` of the window (``k`` = its position in the window; when ``n_main == N`` this is simply its
  position in the study order) is shown at eps level ``(k + participant_index) % L``: a Latin square, so over
  the ``L`` participants of a block every image is shown at every level exactly once, and within a
  participant the level counts differ by at most one. (When ``n_main == N`` any ``L`` consecutive participants
  form such a square, not just aligned blocks.)
* With ``config.clean_share`` the rotation runs over a *cycle* of slots instead of the levels: ``c`` clean
  slots and one per perturbed level (``L`` above is then the cycle's length ``c + L - 1``), so the clean share
  is ``c / (c + L - 1)`` with every guarantee above kept for the slots.
* The order of the main trials is shuffled per participant.

Several stimulus sets (``config.compare_stimulus_set_ids``, e.g. the same images masked and unmasked): the
rotation runs over *conditions*, every (set, slot) pair, ``C = S * L`` of them for ``S`` sets, and ``L`` above
becomes ``C`` (blocks of ``C`` participants). Image ``k`` of the window gets condition
``c = (k + participant_index) % C``: set ``c % S``, slot ``c // S``. So

* within a participant, the sets' trial counts differ by at most one, and so do the slot counts within each
  set; each image appears once, in one set only (a participant never sees an image in two sets);
* over ``C`` consecutive participants of a block, every image is shown in every set at every slot exactly
  once (a Latin square by enrolment slot), so set and image are not confounded;
* the sets' trials are interleaved by the same per-participant shuffle as the slots.

With one set, ``S = 1`` and everything above is the single-set design, trial for trial. Practice, catch and
annotation trials come from the first set (``config.stimulus_set_id``); ``TrialSpec.set_index`` says which set
a trial's stimulus comes from (an index into ``config.stimulus_set_ids``). ``image_ids`` are then the images
every set has (the caller's intersection).

Catch trials show an image at `CATCH_EPS`, an obviously visible perturbation whose correct answer is
"perturbed"; they sit at random places among the main trials, never first in the main phase and never next
to each other. Practice comes first (clean and the largest eps alternating, so feedback teaches the
difference), annotation last (clean images, preferably ones the participant saw in the main phase).

Everything is a pure function of ``(config.seed, participant_index)`` and the sorted inputs; the global
``random`` state is never touched.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from backend.study.config import StudyConfig

#: Perturbation size (L-inf, images in [0, 1]) of catch stimuli: about 64/255, plainly visible noise, so a
#: participant who answers "clean" to it is not paying attention.
CATCH_EPS: float = 0.25

Phase = Literal["practice", "main", "catch", "annotate"]


@dataclass(frozen=True)
class TrialSpec:
    """One trial: its 0-based position in the participant's session, its phase, the source image, and eps.

    ``eps`` is 0.0 for a clean image (always so for ``annotate``), `CATCH_EPS` for ``catch``, and one of the
    stimulus set's levels otherwise.
    """

    position: int
    phase: Phase
    image_id: int
    eps: float
    #: Index into ``StudyConfig.stimulus_set_ids`` of the set the stimulus comes from (0: the first set).
    set_index: int = 0

    @property
    def expected_judgment(self) -> Literal["perturbed", "clean"] | None:
        """The correct detection answer ("perturbed" iff eps > 0); None for annotation trials."""
        if self.phase == "annotate":
            return None
        return "perturbed" if self.eps > 0 else "clean"


def _rng(*parts: object) -> random.Random:
    """A private generator seeded from a stable hash of ``parts`` (not Python's salted ``hash``)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _unique_sorted_ids(ids: Iterable[int], what: str) -> list[int]:
    ids = list(ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"{what} must be integers (database ids); got {i!r}")
    out = sorted(set(ids))
    if len(out) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{what} contains duplicates {dupes[:10]}; pass each image id once")
    return out


def _check_eps_levels(eps_levels: Sequence[float]) -> list[float]:
    if len(eps_levels) == 0:
        raise ValueError("eps_levels is empty; pass the stimulus set's eps levels including the clean level 0.0")
    levels = []
    for e in eps_levels:
        e = float(e)
        if not math.isfinite(e) or e < 0:
            raise ValueError(f"eps_levels must be finite and >= 0; got {e!r}")
        levels.append(e)
    levels.sort()
    if len(set(levels)) != len(levels):
        raise ValueError(f"eps_levels has duplicates: {levels}; pass each level once")
    if levels[0] != 0.0:
        raise ValueError(
            f"eps_levels {levels} lacks the clean level 0.0; add 0.0 so clean images are balanced with the "
            "perturbed ones (false-alarm rates and d' need them)"
        )
    return levels


def level_cycle(levels: list[float], clean_share: float | None) -> list[float]:
    """The slots the Latin square rotates through: the sorted levels (clean first), with the clean level
    repeated ``c = max(1, round(clean_share * (L - 1) / (1 - clean_share)))`` times when a share is set."""
    if clean_share is None or len(levels) == 1:
        return list(levels)
    if not 0 < clean_share < 1:
        raise ValueError(f"clean_share must lie strictly between 0 and 1; got {clean_share}")
    perturbed = levels[1:]
    c = max(1, round(clean_share * len(perturbed) / (1 - clean_share)))
    return [0.0] * c + perturbed


def _main_trials(
    order: list[int], levels: list[float], n_main: int, participant_index: int, n_sets: int = 1
) -> list[tuple[int, float, int]]:
    """(image_id, eps, set_index) of the participant's main trials, in window order (unshuffled)."""
    n_images, n_conditions = len(order), len(levels) * n_sets
    block = participant_index // n_conditions
    start = (block * n_main) % n_images
    out = []
    for k in range(n_main):
        condition = (k + participant_index) % n_conditions
        out.append((order[(start + k) % n_images], levels[condition // n_sets], condition % n_sets))
    return out


def _pick(rng: random.Random, preferred: list[int], fallback: list[int], n: int) -> list[int]:
    """``n`` ids: a random sample of ``preferred`` first, then of ``fallback``, then cycling if still short."""
    chosen = rng.sample(preferred, min(n, len(preferred)))
    if len(chosen) < n:
        taken = set(chosen)
        rest = [i for i in fallback if i not in taken]
        chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
    pool = list(chosen)
    while len(chosen) < n and pool:
        chosen.append(pool[(len(chosen) - len(pool)) % len(pool)])
    return chosen


def _ranked_first(pool: list[int], ranked: Sequence[int], n: int) -> list[int]:
    """The first ``n`` distinct ids of ``ranked`` that are in ``pool`` (a ranking may list images the pool lacks:
    another split, or a stimulus set changed since it was ranked)."""
    members = set(pool)
    out: list[int] = []
    for image_id in dict.fromkeys(ranked):
        if len(out) == n:
            break
        if image_id in members:
            out.append(image_id)
    return out


def build_schedule(
    config: StudyConfig,
    *,
    participant_index: int,
    image_ids: list[int],
    eps_levels: list[float],
    practice_image_ids: list[int] | None = None,
    annotate_image_ids: list[int] | None = None,
    annotate_first: Sequence[int] | None = None,
) -> list[TrialSpec]:
    """The ordered trials of participant ``participant_index`` (0-based, in enrollment order).

    ``image_ids`` are the stimulus set's source images (with several sets: those every set has);
    ``eps_levels`` its perturbation levels including 0.0 (clean). ``practice_image_ids``, when given, are
    used for practice instead of main-study images not in this participant's main phase (if no such images
    exist, practice reuses main images, which then appear twice). Catch trials use images outside the
    participant's main phase when there are any.
    ``annotate_image_ids``, when given and not empty, is the annotation pool (e.g. the training images, so
    the paintings reach SIP-AT): annotation trials are a seeded sample of it instead of main-phase images.
    ``annotate_first`` (the active painting pool: a ranking's pick order, images with enough paintings left
    out) puts those of its ids that are in the pool first, in its order; a seeded sample of the rest of the
    pool fills what they leave. Ignored without a pool.

    Returns ``n_practice + n_main + n_catch + n_annotate`` trials with positions 0, 1, 2, ...
    Raises ValueError when the inputs cannot satisfy ``config`` (too few images, bad eps levels, more catch
    trials than main trials, ...), saying what to change.
    """
    if isinstance(participant_index, bool) or not isinstance(participant_index, int) or participant_index < 0:
        raise ValueError(f"participant_index must be an integer >= 0; got {participant_index!r}")
    images = _unique_sorted_ids(image_ids, "image_ids")
    levels = _check_eps_levels(eps_levels)
    if not images:
        raise ValueError("image_ids is empty; the stimulus set has no source images")
    if config.n_main > len(images):
        raise ValueError(
            f"n_main={config.n_main} exceeds the {len(images)} source images of the stimulus set (each image is "
            f"shown at most once per participant); lower n_main to at most {len(images)} or add images"
        )
    if config.n_catch > config.n_main:
        raise ValueError(
            f"n_catch={config.n_catch} exceeds n_main={config.n_main}; catch trials must be separated by main "
            "trials, so use at most as many catch trials as main trials"
        )
    annotate_pool = _unique_sorted_ids(annotate_image_ids, "annotate_image_ids") if annotate_image_ids else None
    n_pool = len(annotate_pool) if annotate_pool else len(images)
    if config.n_annotate > n_pool:
        raise ValueError(f"n_annotate={config.n_annotate} exceeds the {n_pool} images to paint; lower n_annotate")
    if config.n_practice > 0 and levels[-1] == 0.0:
        raise ValueError(
            "practice trials need a perturbed level to give feedback on, but eps_levels is only [0.0]; "
            "add eps levels or set n_practice=0"
        )
    practice_pool = None
    if practice_image_ids is not None:
        practice_pool = _unique_sorted_ids(practice_image_ids, "practice_image_ids")
        if config.n_practice > 0 and not practice_pool:
            raise ValueError("practice_image_ids is empty; pass practice images or None to use study images")

    seed = config.seed
    order = list(images)
    _rng("study-order", seed).shuffle(order)
    rng = _rng("participant", seed, participant_index)

    n_sets = len(config.stimulus_set_ids)
    main = _main_trials(order, level_cycle(levels, config.clean_share), config.n_main, participant_index, n_sets)
    main_ids = [image_id for image_id, _, _ in main]
    main_set = set(main_ids)
    unused = [i for i in images if i not in main_set]

    # Practice: clean and the largest eps alternating, starting with clean.
    if practice_pool is not None:
        practice_ids = _pick(rng, practice_pool, [], config.n_practice)
    else:
        practice_ids = _pick(rng, unused, images, config.n_practice)
    practice = [(image_id, 0.0 if j % 2 == 0 else levels[-1]) for j, image_id in enumerate(practice_ids)]

    # Main, shuffled; catch trials go into distinct gaps after main trials 1..n_main, so never first and
    # never adjacent.
    rng.shuffle(main)
    practice_set = set(practice_ids)
    catch_ids = _pick(rng, [i for i in unused if i not in practice_set], images, config.n_catch)
    gaps = set(rng.sample(range(1, config.n_main + 1), config.n_catch))
    middle: list[tuple[Phase, int, float, int]] = []
    catches = iter(catch_ids)
    for j, (image_id, eps, set_index) in enumerate(main, start=1):
        middle.append(("main", image_id, eps, set_index))
        if j in gaps:
            middle.append(("catch", next(catches), CATCH_EPS, 0))

    # Annotation: clean images the participant saw in the main phase, then others if needed.
    if annotate_pool:  # a generator of its own, so the detection trials stay as they were without a pool
        annotate_ids = _ranked_first(annotate_pool, annotate_first or [], config.n_annotate)
        rest = [i for i in annotate_pool if i not in set(annotate_ids)] if annotate_ids else annotate_pool
        annotate_ids += _rng("annotate", seed, participant_index).sample(rest, config.n_annotate - len(annotate_ids))
    else:
        annotate_ids = _pick(rng, sorted(main_set), images, config.n_annotate)

    phases: list[tuple[Phase, int, float, int]] = [("practice", i, e, 0) for i, e in practice]
    phases += middle
    phases += [("annotate", i, 0.0, 0) for i in annotate_ids]
    return [TrialSpec(position=p, phase=ph, image_id=i, eps=e, set_index=s) for p, (ph, i, e, s) in enumerate(phases)]
