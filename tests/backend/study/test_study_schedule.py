"""Trial schedules: determinism, balance, Latin-square rotation, catch placement, phase order, errors."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from backend.study.config import StudyConfig
from backend.study.schedule import CATCH_EPS, TrialSpec, build_schedule

EPS = [0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255]
IMAGES = list(range(100, 140))  # 40 source images


def _cfg(**kw) -> StudyConfig:
    return StudyConfig(stimulus_set_id=1, **kw)


def _main(trials: list[TrialSpec]) -> list[TrialSpec]:
    return [t for t in trials if t.phase == "main"]


def test_deterministic_and_insensitive_to_input_order():
    cfg = _cfg(seed=7)
    a = build_schedule(cfg, participant_index=3, image_ids=IMAGES, eps_levels=EPS)
    b = build_schedule(cfg, participant_index=3, image_ids=IMAGES[::-1], eps_levels=EPS[::-1])
    assert a == b
    assert [t.position for t in a] == list(range(len(a)))
    assert len(a) == cfg.n_practice + cfg.n_main + cfg.n_catch + cfg.n_annotate
    # another participant or another seed gives another schedule
    assert build_schedule(cfg, participant_index=4, image_ids=IMAGES, eps_levels=EPS) != a
    assert build_schedule(_cfg(seed=8), participant_index=3, image_ids=IMAGES, eps_levels=EPS) != a


def test_global_random_state_untouched():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    build_schedule(_cfg(), participant_index=0, image_ids=IMAGES, eps_levels=EPS)
    assert random.random() == expected


@pytest.mark.parametrize("n_main", [40, 23, 7])
def test_within_participant_balance_and_each_image_once(n_main):
    cfg = _cfg(n_main=n_main, n_catch=min(4, n_main))
    for p in range(12):
        main = _main(build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS))
        assert len(main) == n_main
        ids = [t.image_id for t in main]
        assert len(set(ids)) == n_main, "an image repeated within the main phase"
        counts = Counter(t.eps for t in main)
        per_level = [counts.get(e, 0) for e in EPS]
        assert max(per_level) - min(per_level) <= 1, per_level


def test_latin_square_full_set_any_consecutive_participants():
    cfg = _cfg(n_main=40)
    L = len(EPS)
    for first in (0, 3):  # aligned and unaligned runs of L participants
        seen: dict[int, Counter] = {i: Counter() for i in IMAGES}
        for p in range(first, first + L):
            for t in _main(build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS)):
                seen[t.image_id][t.eps] += 1
        for image_id, c in seen.items():
            assert c == Counter({e: 1 for e in EPS}), (image_id, c)


def test_latin_square_and_even_use_with_image_subsets():
    # 40 images, 16 per participant, 5 levels: each block of 5 participants shares a window of 16 images and
    # shows each of them at every level exactly once; successive windows rotate through all images.
    cfg = _cfg(n_main=16)
    L = len(EPS)
    n_blocks = 5  # 5 * 16 = 80 = 2 full passes over the 40 images
    use = Counter()
    for b in range(n_blocks):
        seen: dict[int, Counter] = {}
        for p in range(b * L, (b + 1) * L):
            for t in _main(build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS)):
                seen.setdefault(t.image_id, Counter())[t.eps] += 1
                use[t.image_id] += 1
        assert len(seen) == 16
        for image_id, c in seen.items():
            assert c == Counter({e: 1 for e in EPS}), (b, image_id, c)
    assert set(use) == set(IMAGES)
    assert set(use.values()) == {2 * L}, "images are not used evenly across participants"


def test_main_order_is_shuffled_per_participant():
    cfg = _cfg()
    a = _main(build_schedule(cfg, participant_index=0, image_ids=IMAGES, eps_levels=EPS))
    b = _main(build_schedule(cfg, participant_index=len(EPS), image_ids=IMAGES, eps_levels=EPS))
    # same block-mate set of images and (shifted by L) the same levels, but a different trial order
    assert sorted(t.image_id for t in a) == sorted(t.image_id for t in b)
    assert [t.image_id for t in a] != [t.image_id for t in b]


def test_phase_order_practice_first_annotate_last_and_catch_placement():
    cfg = _cfg(n_main=20, n_catch=6, n_practice=4, n_annotate=5)
    for p in range(20):
        trials = build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS)
        phases = [t.phase for t in trials]
        assert phases[:4] == ["practice"] * 4
        assert phases[-5:] == ["annotate"] * 5
        middle = phases[4:-5]
        assert Counter(middle) == Counter({"main": 20, "catch": 6})
        assert middle[0] == "main"
        for x, y in pairwise(middle):
            assert not (x == "catch" and y == "catch"), middle
        catch = [t for t in trials if t.phase == "catch"]
        assert all(t.eps == CATCH_EPS and t.expected_judgment == "perturbed" for t in catch)
        main_ids = {t.image_id for t in _main(trials)}
        # 40 images, 20 in main: catch images come from the other 20
        assert not main_ids & {t.image_id for t in catch}
        # practice: clean and the largest eps alternating, on images outside the main phase
        practice = trials[:4]
        assert [t.eps for t in practice] == [0.0, EPS[-1], 0.0, EPS[-1]]
        assert not main_ids & {t.image_id for t in practice}
        # annotation: clean versions of images seen in the main phase, distinct
        annotate = trials[-5:]
        assert all(t.eps == 0.0 and t.expected_judgment is None for t in annotate)
        assert {t.image_id for t in annotate} <= main_ids
        assert len({t.image_id for t in annotate}) == 5


def test_catch_positions_vary_across_participants():
    cfg = _cfg(n_main=20, n_catch=3, n_practice=0, n_annotate=0)
    layouts = {
        tuple(
            t.position
            for t in build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS)
            if t.phase == "catch"
        )
        for p in range(10)
    }
    assert len(layouts) > 1


def test_explicit_practice_images_and_fallbacks():
    cfg = _cfg(n_main=40, n_practice=6, n_annotate=3)
    trials = build_schedule(cfg, participant_index=0, image_ids=IMAGES, eps_levels=EPS, practice_image_ids=[1, 2])
    practice = [t for t in trials if t.phase == "practice"]
    assert {t.image_id for t in practice} == {1, 2}
    assert [t.eps for t in practice] == [0.0, EPS[-1]] * 3
    # all images are in the main phase and no practice ids given: practice and catch reuse study images
    trials = build_schedule(cfg, participant_index=0, image_ids=IMAGES, eps_levels=EPS)
    assert all(t.image_id in IMAGES for t in trials)
    assert len(_main(trials)) == 40


def test_annotate_beyond_main_uses_other_images():
    cfg = _cfg(n_main=3, n_catch=1, n_annotate=6, n_practice=0)
    trials = build_schedule(cfg, participant_index=0, image_ids=IMAGES[:10], eps_levels=[0.0, 0.1])
    main_ids = {t.image_id for t in _main(trials)}
    annotate = [t.image_id for t in trials if t.phase == "annotate"]
    assert len(set(annotate)) == 6
    assert main_ids <= set(annotate)


@pytest.mark.parametrize(
    ("kwargs", "config", "match"),
    [
        ({"image_ids": IMAGES[:10]}, {"n_main": 11}, "n_main=11 exceeds the 10"),
        ({"eps_levels": []}, {}, "eps_levels is empty"),
        ({"eps_levels": [0.01, 0.02]}, {}, "lacks the clean level 0.0"),
        ({"eps_levels": [0.0, 0.01, 0.01]}, {}, "duplicates"),
        ({"eps_levels": [0.0, -0.1]}, {}, ">= 0"),
        ({"eps_levels": [0.0, float("nan")]}, {}, "finite"),
        ({"image_ids": []}, {"n_main": 1}, "image_ids is empty"),
        ({"image_ids": [1, 1, 2]}, {"n_main": 1}, "duplicates"),
        ({}, {"n_main": 3, "n_catch": 4}, "n_catch=4 exceeds n_main=3"),
        ({"image_ids": IMAGES[:5]}, {"n_main": 5, "n_catch": 1, "n_annotate": 6}, "n_annotate=6"),
        ({"eps_levels": [0.0]}, {"n_practice": 2}, "practice trials need a perturbed level"),
        ({"practice_image_ids": []}, {}, "practice_image_ids is empty"),
        ({"participant_index": -1}, {}, "participant_index"),
    ],
)
def test_errors(kwargs, config, match):
    args = {"participant_index": 0, "image_ids": IMAGES, "eps_levels": EPS} | kwargs
    with pytest.raises(ValueError, match=match):
        build_schedule(_cfg(**config), **args)


def test_only_clean_level_without_practice_is_allowed():
    trials = build_schedule(
        _cfg(n_main=5, n_practice=0, n_catch=0, n_annotate=0), participant_index=0, image_ids=IMAGES, eps_levels=[0.0]
    )
    assert [t.eps for t in trials] == [0.0] * 5


@pytest.mark.parametrize(("share", "clean_slots"), [(0.5, 4), (0.2, 1), (0.3, 2), (0.75, 12)])
def test_clean_share_sets_the_clean_slots_and_keeps_the_latin_square(share, clean_slots):
    """4 perturbed levels: c = max(1, round(share * 4 / (1 - share))) clean slots per cycle of c + 4."""
    cycle = clean_slots + 4
    cfg = _cfg(n_main=40, n_catch=4, clean_share=share)
    shown: dict[int, Counter] = {}
    for p in range(cycle):  # one block: every image at every slot once
        main = _main(build_schedule(cfg, participant_index=p, image_ids=IMAGES, eps_levels=EPS))
        counts = Counter(t.eps for t in main)
        # within a participant: clean gets c slots' worth, each perturbed level one slot's, to within one trial
        assert abs(counts[0.0] - 40 * clean_slots / cycle) <= clean_slots
        assert all(abs(counts[e] - 40 / cycle) <= 1 for e in EPS[1:]), counts
        for t in main:
            shown.setdefault(t.image_id, Counter())[t.eps] += 1
    for image, per in shown.items():
        assert per == Counter({0.0: clean_slots, **dict.fromkeys(EPS[1:], 1)}), (image, per)


def test_clean_share_default_and_bounds():
    a = build_schedule(_cfg(), participant_index=2, image_ids=IMAGES, eps_levels=EPS)
    b = build_schedule(_cfg(clean_share=0.2), participant_index=2, image_ids=IMAGES, eps_levels=EPS)
    assert a == b  # 0.2 with five levels is the default's one clean slot per cycle
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="clean_share"):
            _cfg(clean_share=bad)
