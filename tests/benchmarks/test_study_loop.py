"""The simulated study of `benchmarks/study_loop` runs the real loop: the service's own refresh queues a ranking
after every K paintings, the active pool's next participant paints that ranking's images, the random pool's
does not follow it, and one person paints an image alike in both studies (what makes the comparison paired)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.db import session_scope
from backend.models import Job
from benchmarks.study_loop.__main__ import gather, main
from benchmarks.study_loop.measure import Yardstick, measure
from benchmarks.study_loop.people import Population, take_part
from benchmarks.study_loop.report import lines
from benchmarks.study_loop.world import LoopConfig, World, build_world

pytestmark = pytest.mark.timeout(300)

CFG = LoopConfig(n_train=48, n_test=12, paintings=20, every=10, per_session=5, predictor_steps=20)


def _rankings(world: World, study_id: int) -> list[Job]:
    with session_scope(world.rt.session_factory) as session:
        jobs = session.scalars(select(Job).where(Job.kind == "rank_paintings").order_by(Job.id)).all()
        return [j for j in jobs if j.params["study_id"] == study_id]


def _ranked(world: World, job: Job) -> list[int]:
    """The training-image indices a ranking lists, in pick order."""
    return [world.train_ids.index(r["image_id"]) for r in (job.result or {})["ranking"]]


def test_the_active_pool_follows_the_ranking_the_service_queued_itself(tmp_path: Path) -> None:
    with build_world(tmp_path, CFG, seed=0) as world:
        people = Population(world.train_masks, seed=0)
        active_id, active = world.studies["active"]
        random_id, random = world.studies["random"]
        first = take_part(world, active, people, 0) + take_part(world, active, people, 1)
        assert len(first) == 10
        (job,) = _rankings(world, active_id)
        assert job.status == "succeeded" and job.params["after_paintings"] == 10  # queued by the refresh
        ranked = _ranked(world, job)
        assert not set(ranked) & set(first)
        nxt = take_part(world, active, people, 2)
        assert nxt == ranked[:5]  # the next participant paints the ranking's top images, in order

        # the random pool: the same people, the same first paintings (both pools start at random), then not the
        # ranking its own refresh made
        assert take_part(world, random, people, 0) + take_part(world, random, people, 1) == first
        (own,) = _rankings(world, random_id)
        ranked_random = _ranked(world, own)
        assert take_part(world, random, people, 2) != ranked_random[:5]

        assert people.painting(2, nxt[0]) == Population(world.train_masks, seed=0).painting(2, nxt[0])
        assert people.painting(2, nxt[0]) != people.painting(3, nxt[0])

        row = measure(world, active_id, Yardstick(world, 0), steps=20, width=8, seed=0)
        assert row["paintings"] == 15 and row["images"] == len(set(first + nxt)) and row["rankings"] == 1
        assert row["ranking_heldout_cc"] == (job.result or {})["heldout"]["cc"]
        assert -1 <= row["cc"] <= 1 and -1 <= row["fill_cc"] <= 1


def test_a_config_whose_measuring_points_fall_inside_a_session_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of per_session"):
        LoopConfig(every=12, per_session=5)


def test_the_report_pairs_the_pools_over_seeds() -> None:
    rows = [
        {"seed": s, "pool": pool, "paintings": 10, "images": 10, "cc": base + gain, "fill_cc": base}
        for s, base in enumerate((0.5, 0.6, 0.7))
        for pool, gain in (("random", 0.0), ("active", 0.1 + 0.01 * s))
    ]
    text = "\n".join(lines(rows, {"seeds": [0, 1, 2]}, 1.0))
    assert "| 10 | +0.110 [+0.100, +0.120] (t p=0.0027, " in text  # CC: active minus random, mean of 0.10, 0.11, 0.12
    assert "| active | 10 | 10 | - | 0.710 |" in text


def test_finished_seeds_are_gathered_and_a_folder_of_another_config_is_refused(tmp_path: Path) -> None:
    config = asdict(CFG)
    (tmp_path / "seeds").mkdir()
    for seed in (3, 1):
        done = {"config": config, "seed": seed, "seconds": 2.5, "rows": [{"seed": seed, "pool": "random"}]}
        (tmp_path / "seeds" / f"seed-{seed}.json").write_text(json.dumps(done))
    rows, seeds, seconds = gather(tmp_path, config)
    assert seeds == [1, 3] and seconds == 5.0 and {r["seed"] for r in rows} == {1, 3}
    with pytest.raises(SystemExit, match="was run with"):
        gather(tmp_path, {**config, "paintings": 40})


def test_a_report_of_a_folder_without_finished_seeds_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no finished seed under"):
        main(["--report-only", "--out", str(tmp_path / "nothing")])
