"""`fashion` and `premise` are built-ins like `mnist5k` and `shapes`: loaded by name, their options checked."""

import dataclasses
import os

import pytest

from sipat.data import BUILTIN_DATASETS, default_eps_for, load_builtin
from sipat.data.builtin import PREMISE_OPTIONS
from sipat.fashion import DEFAULT_ROOT
from sipat.premise import PremiseParams


def test_premise_options_are_its_params():
    assert tuple(f.name for f in dataclasses.fields(PremiseParams)) == PREMISE_OPTIONS


def test_premise_loads_by_name_with_its_options_and_masks():
    ds = load_builtin("premise", split="test", seed=3, n_train=8, n_test=12, image_size=24)
    assert len(ds) == 12 and ds.images.shape[-2:] == (24, 24) and ds.num_classes == 4
    assert ds.salience.shape == (12, 1, 24, 24) and set(ds.salience.unique().tolist()) <= {0.0, 1.0}
    assert default_eps_for("premise") == pytest.approx(8 / 255)
    with pytest.raises(TypeError, match="premise does not take"):
        load_builtin("premise", n_images=3)


@pytest.mark.skipif(
    not (DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz").is_file() and os.environ.get("CI") != "true",
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_loads_by_name():
    ds = load_builtin("fashion", split="test", n_test=50)
    assert len(ds) == 50 and ds.num_classes == 10 and ds.images.shape[1:] == (1, 28, 28)
    assert BUILTIN_DATASETS["fashion"].default_eps == 0.1
