"""The torch-free vocabulary: it must import without torch, stand identically on both sides of the torch line
(`sipat/vocabulary.py`, `backend/vocabulary.py`), and agree with what `sipat` implements."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend import vocabulary as bv
from sipat import vocabulary as v


def test_the_two_vocabularies_are_one_text() -> None:
    """DESIGN.md lets neither `backend` import `sipat` nor `sipat` import ours: the one definition stands twice."""
    assert Path(bv.__file__).read_bytes() == Path(v.__file__).read_bytes()


def test_importing_the_vocabulary_and_the_service_pulls_no_torch() -> None:
    code = "import sys, sipat.vocabulary, backend.main; sys.exit(1 if 'torch' in sys.modules else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr or "importing sipat.vocabulary or backend.main imported torch"


@pytest.mark.parametrize(("text", "value"), [("8/255", 8 / 255), (" 0.0314 ", 0.0314), (0, 0.0), (1, 1.0), ("0", 0.0)])
def test_parse_eps_reads_fractions_and_decimals(text, value) -> None:
    assert v.parse_eps(text) == pytest.approx(value, abs=0)


@pytest.mark.parametrize("bad", ["-8/255", -0.1, "1/0", "abc", "nan", "inf", 1.5, True, None, [1]])
def test_parse_eps_refuses_what_is_not_a_radius(bad) -> None:
    with pytest.raises(ValueError, match="eps"):
        v.parse_eps(bad)


def test_parse_eps_list_sorts_dedupes_and_needs_one() -> None:
    assert v.parse_eps_list("8/255, 0 2/255;8/255") == [0.0, 2 / 255, 8 / 255]
    with pytest.raises(ValueError, match="at least one"):
        v.parse_eps_list(" , ")


def test_labels_use_grey_levels_only_when_the_whole_grid_does() -> None:
    assert v.grid_labels([0, 2 / 255, 8 / 255]) == ["0", "2/255", "8/255"]
    assert v.grid_labels([0, 0.1, 0.3]) == ["0", "0.1", "0.3"]
    assert v.eps_label(0.3) == "0.3"


def test_stored_six_digit_radii_read_as_their_grey_level() -> None:
    """A job's metrics keep 6 significant digits: 0.0313725 is 8/255, not a new radius; 0.0314 (8.007 levels)
    is not a whole level. The dashboard's labels are the same function (its filter and column labels)."""
    from backend.admin.deps import fmt_eps

    assert v.eps_label(0.0313725) == "8/255" and v.eps_label(float("0.0156863")) == "4/255"
    assert v.in_255ths([0.0, 0.00784314, 0.0313725]) and v.grid_labels([0.0313725]) == ["8/255"]
    assert v.eps_label(0.0314) == "0.0314" and v.eps_label(0.5 / 255) == f"{0.5 / 255:g}"
    assert [fmt_eps(e) for e in (None, 0.0, 0.0313725, 0.0314)] == ["—", "0", "8/255", "0.0314"]


def test_parse_boxes_checks_shape_sign_and_bounds() -> None:
    assert v.parse_boxes("[1, 2, 3, 4]", (10, 10)) == [[1.0, 2.0, 3.0, 4.0]]
    assert v.parse_boxes("[[0,0,0,0]]", (10, 10)) == [[0.0, 0.0, 0.0, 0.0]]
    for bad, match in [("[[0,0,-1,2]]", "negative"), ("[[5,5,6,1]]", "outside"), ("{", "JSON"), ("[[1,2]]", "4")]:
        with pytest.raises(ValueError, match=match):
            v.parse_boxes(bad, (10, 10))


def test_lists_agree_with_the_method_library() -> None:
    from sipat import models, training

    assert tuple(training.METHODS) == v.METHODS
    assert set(training.MASKED_METHODS) == set(v.MASKED_METHODS)
    assert tuple(models.ARCHITECTURES) == v.ARCHITECTURES


def test_stimulus_attacks_are_registry_attacks_and_the_job_runs_each() -> None:
    import inspect

    from sipat.attacks.registry import ATTACKS
    from worker.jobs import stimuli

    assert tuple(ATTACKS) == v.EVAL_ATTACKS
    assert set(v.STIMULUS_ATTACKS) <= set(v.EVAL_ATTACKS) and set(v.STIMULUS_ATTACKS) >= v.LINF_ONLY_ATTACKS
    assert set(v.STIMULUS_ATTACKS) - v.LINF_ONLY_ATTACKS == {"pgd"}  # the only one with an L2 version
    source = inspect.getsource(stimuli._attack)
    assert all(f'"{a}"' in source for a in v.STIMULUS_ATTACKS if a != "pgd")  # pgd is the fall-through


def test_the_train_config_and_the_job_params_use_the_vocabulary_lists() -> None:
    """The drift copies are gone: each side holds the vocabulary's own objects, not lists spelled again."""
    from typing import get_args

    from backend.admin import training as admin_training
    from backend.datasets import archive
    from backend.services import job_params, training_coverage
    from sipat import train_config
    from sipat.data import files

    assert train_config.METHODS is v.METHODS and train_config.MASKED_METHODS is v.MASKED_METHODS
    assert job_params.ARCHITECTURES is bv.ARCHITECTURES and job_params.MASKED_METHODS is bv.MASKED_METHODS
    assert admin_training.ARCHITECTURES is bv.ARCHITECTURES
    assert training_coverage.MASKED_METHODS is bv.MASKED_METHODS
    assert archive.IMAGE_EXTENSIONS is bv.IMAGE_EXTENSIONS and files.IMAGE_EXTENSIONS is v.IMAGE_EXTENSIONS
    assert (archive.IMAGE_COL, archive.CLASS_COL) == v.MANIFEST_REQUIRED_COLUMNS == files.REQUIRED_COLUMNS
    assert (archive.MAP_COL, archive.BOX_COL) == v.MANIFEST_SALIENCE_COLUMNS == files.SALIENCE_COLUMNS
    fields = job_params.TrainParams.model_fields
    assert get_args(fields["method"].annotation) == v.METHODS
    assert fields["eval_eps"].default_factory() == list(v.DEFAULT_EVAL_EPS)
    assert set(v.TRAIN_EVAL_ATTACKS) <= set(v.EVAL_ATTACKS)
    assert get_args(job_params.EvaluateParams.model_fields["attacks"].annotation) == (v.EvalAttack,)


def test_the_upload_and_the_library_read_boxes_alike() -> None:
    """A manifest's boxes are refused, and drawn, by one rule on both sides (`vocabulary.parse_boxes`)."""
    import io

    import numpy as np
    from PIL import Image

    from backend.datasets.archive_images import boxes_png
    from backend.datasets.safezip import ArchiveError

    for bad in ["[[0,0,-1,2]]", "[[5,5,6,1]]", "{", "[[1,2]]", '"x"']:
        with pytest.raises(ValueError) as lib:
            v.parse_boxes(bad, (10, 10))
        with pytest.raises(ArchiveError) as web:
            boxes_png(bad, "manifest.csv line 2", (10, 10))
        assert str(web.value) == f"manifest.csv line 2: {lib.value}"
    gray = np.asarray(Image.open(io.BytesIO(boxes_png("[[1, 2, 3, 4], [0, 0, 0, 0]]", "w", (10, 10)))))
    expected = np.zeros((10, 10), dtype=np.uint8)
    expected[2:6, 1:4] = 255
    assert np.array_equal(gray, expected)
