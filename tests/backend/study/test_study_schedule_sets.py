"""The schedule of a study of several stimulus sets: interleaved within participants, counterbalanced across them
(a Latin square over (set, eps slot) by enrolment slot), each image in one set only per participant."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from backend.study.config import StudyConfig
from backend.study.schedule import build_schedule

IMAGES = list(range(100, 124))  # 24 images
EPS = [0.0, 2 / 255, 4 / 255, 8 / 255]


def _cfg(n_sets: int = 2, **kw) -> StudyConfig:
    base = {"stimulus_set_id": 1, "n_main": 16, "n_practice": 2, "n_catch": 2, "n_annotate": 2, "seed": 5}
    return StudyConfig(**{**base, "compare_stimulus_set_ids": list(range(2, n_sets + 1)), **kw})


def _main(cfg: StudyConfig, p: int, images: list[int] = IMAGES):
    trials = build_schedule(cfg, participant_index=p, image_ids=images, eps_levels=EPS)
    return [t for t in trials if t.phase == "main"], trials


@pytest.mark.parametrize("n_sets", [2, 3])
def test_each_participant_gets_every_set_balanced_and_no_image_twice(n_sets: int) -> None:
    cfg = _cfg(n_sets, n_main=18)
    for p in range(3 * n_sets * len(EPS)):
        main, trials = _main(cfg, p)
        per_set = Counter(t.set_index for t in main)
        assert set(per_set) == set(range(n_sets))
        assert max(per_set.values()) - min(per_set.values()) <= 1  # sets within one trial of each other
        for s in range(n_sets):  # and within each set the eps levels within one of each other
            levels = Counter(t.eps for t in main if t.set_index == s)
            if len(levels) == len(EPS):
                assert max(levels.values()) - min(levels.values()) <= 1
        assert len({t.image_id for t in main}) == len(main)  # an image is never shown in two sets
        others = [t for t in trials if t.phase != "main"]
        assert all(t.set_index == 0 for t in others)  # practice, catch, annotation: the first set


def test_sets_are_interleaved_not_blocked() -> None:
    """The order mixes the sets: runs of one set are as short as a shuffle makes them, not one block each."""
    cfg = _cfg(2, n_main=24)
    longest = []
    for p in range(8):
        order = [t.set_index for t in _main(cfg, p)[0]]
        switches = sum(a != b for a, b in itertools.pairwise(order))
        assert switches >= 6, order  # two blocks would switch once
        run = best = 1
        for a, b in itertools.pairwise(order):
            run = run + 1 if a == b else 1
            best = max(best, run)
        longest.append(best)
    assert max(longest) < 12


@pytest.mark.parametrize("n_main", [24, 16])
def test_latin_square_across_participants(n_main: int) -> None:
    """Over each block of S * L participants every image is shown in every set at every level exactly once
    (when the window covers all images, any S * L consecutive participants form such a square)."""
    cfg = _cfg(2, n_main=n_main)
    block = 2 * len(EPS)
    seen: Counter[tuple[int, int, float]] = Counter()
    for p in range(block):
        seen.update((t.image_id, t.set_index, t.eps) for t in _main(cfg, p)[0])
    images = {image for image, _, _ in seen}
    assert len(images) == n_main
    assert set(seen.values()) == {1}
    assert len(seen) == n_main * block  # every (image, set, level) once
    # And set does not go with the image: each image appears in both sets equally often across the block.
    by_image = Counter((image, s) for image, s, _ in seen)
    assert set(by_image.values()) == {len(EPS)}


def test_set_counts_balanced_across_participants() -> None:
    cfg = _cfg(2, n_main=10)
    totals: Counter[int] = Counter()
    for p in range(16):
        totals.update(t.set_index for t in _main(cfg, p)[0])
    assert totals[0] == totals[1] == 80


def test_deterministic_per_participant_and_one_set_unchanged() -> None:
    cfg = _cfg(2)
    assert _main(cfg, 3)[1] == _main(cfg, 3)[1]
    assert _main(cfg, 3)[1] != _main(cfg, 4)[1]
    # A one-set study's trials are those of the single-set design (set_index 0 throughout).
    one = StudyConfig(stimulus_set_id=1, n_main=16, n_practice=2, n_catch=2, n_annotate=2, seed=5)
    trials = build_schedule(one, participant_index=2, image_ids=IMAGES, eps_levels=EPS)
    assert {t.set_index for t in trials} == {0}
    main = [t for t in trials if t.phase == "main"]
    assert Counter(t.eps for t in main) == dict.fromkeys(EPS, 4)


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="name a set twice"):
        StudyConfig(stimulus_set_id=1, compare_stimulus_set_ids=[2, 1])
    with pytest.raises(ValueError, match="name a set twice"):
        StudyConfig(stimulus_set_id=1, compare_stimulus_set_ids=[2, 2])
    with pytest.raises(ValueError, match="at most 3"):
        StudyConfig(stimulus_set_id=1, compare_stimulus_set_ids=[2, 3, 4, 5])
    cfg = StudyConfig(stimulus_set_id=7, compare_stimulus_set_ids=[9])
    assert cfg.stimulus_set_ids == [7, 9]
    assert StudyConfig(stimulus_set_id=7).stimulus_set_ids == [7]  # the one-set form stays valid
    assert StudyConfig.model_validate({"stimulus_set_id": 7, "compare_stimulus_set_ids": None}).stimulus_set_ids == [7]
