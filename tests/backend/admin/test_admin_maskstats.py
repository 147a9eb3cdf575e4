"""Mask statistics against hand-computed values: COCO RLE, IoU and agreement, mean map; and the server-side
images (amplified perturbation, overlay)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from backend.admin import imaging
from backend.services.maskstats import (
    bbox,
    binarize,
    encode_png,
    iou,
    mean_map,
    mean_pairwise_iou,
    rle_decode,
    rle_encode,
)

#: 3 rows x 4 columns. Column by column (COCO's order): col 0 = 0 0 1, col 1 = 1 1 1, col 2 = 1 0 0,
#: col 3 = 0 0 0, so the flat sequence is 0 0 | 1 1 1 1 1 | 0 0 0 0 0: runs 2, 5, 5.
MASK = np.array(
    [
        [0, 1, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
    ],
    dtype=bool,
)


def test_rle_counts_are_column_major_and_start_with_zeros() -> None:
    assert rle_encode(MASK) == {"size": [3, 4], "counts": [2, 5, 5]}
    # Row-major reading would give 1 2 2 1 1 ... : the order matters.
    assert rle_encode(MASK.T)["counts"] != [2, 5, 5]
    # A set first pixel: a leading run of zero 0s.
    assert rle_encode(np.array([[1, 1], [0, 1]], dtype=bool))["counts"] == [0, 1, 1, 2]
    assert rle_encode(np.zeros((2, 3), dtype=bool))["counts"] == [6]
    assert rle_encode(np.ones((2, 3), dtype=bool))["counts"] == [0, 6]
    assert rle_encode(np.zeros((0, 3), dtype=bool)) == {"size": [0, 3], "counts": []}


def test_rle_round_trips_and_sums_to_the_pixel_count() -> None:
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 7), (16, 9)]:
        mask = rng.random(shape) > 0.6
        rle = rle_encode(mask)
        assert sum(rle["counts"]) == mask.size
        np.testing.assert_array_equal(rle_decode(rle), mask)
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


def test_binarize_at_half_the_range() -> None:
    np.testing.assert_array_equal(
        binarize(np.array([[0, 127, 128, 255]], dtype=np.uint8)), [[False, False, True, True]]
    )
    np.testing.assert_array_equal(binarize(np.array([[0.49, 0.5]])), [[False, True]])
    with pytest.raises(ValueError, match="threshold"):
        binarize(MASK, threshold=0)


def test_iou_and_mean_pairwise_iou_by_hand() -> None:
    a = np.zeros((2, 4), dtype=bool)
    a[:, :2] = True  # 4 pixels
    b = np.zeros((2, 4), dtype=bool)
    b[:, 1:3] = True  # 4 pixels, 2 shared with a
    c = np.zeros((2, 4), dtype=bool)  # empty
    assert iou(a, b) == pytest.approx(2 / 6)
    assert iou(a, a) == 1.0
    assert iou(a, c) == 0.0
    assert iou(c, c) == 1.0  # both painted nothing: full agreement
    # Pairs (a, b), (a, c), (b, c): (1/3 + 0 + 0) / 3.
    assert mean_pairwise_iou([a, b, c]) == pytest.approx(1 / 9)
    # Grayscale masks are binarised first: 200 counts as painted, 100 does not.
    assert mean_pairwise_iou([a.astype(np.uint8) * 200, (b.astype(np.uint8) * 100)]) == 0.0
    assert mean_pairwise_iou([a]) is None
    with pytest.raises(ValueError, match="shape"):
        iou(a, a.T)


def test_mean_map_and_bbox() -> None:
    m = mean_map([np.array([[255, 0]], dtype=np.uint8), np.array([[255, 255]], dtype=np.uint8)])
    np.testing.assert_allclose(m, [[1.0, 0.5]])
    assert bbox(MASK) == [0.0, 0.0, 3.0, 3.0]  # columns 0-2, rows 0-2
    assert bbox(np.zeros((2, 2), dtype=bool)) == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        mean_map([np.zeros((2, 2)), np.zeros((3, 2))])


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array.astype(np.uint8), "RGB").save(out, format="PNG")
    return out.getvalue()


def test_amplified_perturbation_is_scaled_to_the_full_range() -> None:
    clean = np.full((2, 3, 3), 100, dtype=np.uint8)
    adv = clean.copy()
    adv[0, 0, 0] = 102  # +2/255: the largest change
    adv[1, 2, 1] = 99  # -1/255: half of it
    amplified, peak = imaging.amplified_difference(imaging.decode_rgb(_png(clean)), imaging.decode_rgb(_png(adv)))
    assert peak == pytest.approx(2 / 255)
    expected = np.zeros((2, 3, 3))
    expected[0, 0, 0] = 1.0
    expected[1, 2, 1] = 0.5
    np.testing.assert_allclose(amplified, expected)
    out = np.asarray(PILImage.open(io.BytesIO(encode_png(amplified))))
    assert out[0, 0, 0] == 255 and out[1, 2, 1] in (127, 128) and out.sum() <= 255 + 128
    same, zero = imaging.amplified_difference(expected, expected)
    assert zero == 0 and not same.any()


def test_overlay_leaves_non_salient_pixels_alone() -> None:
    image = np.full((2, 2, 3), 0.5)
    salience = np.array([[0.0, 1.0], [0.0, 0.5]])
    out = imaging.overlay(image, salience, opacity=0.6, outline=False)
    np.testing.assert_allclose(out[0, 0], image[0, 0])
    np.testing.assert_allclose(out[0, 1], 0.4 * 0.5 + 0.6 * imaging.heat(np.array(1.0)))
    assert not np.allclose(out[1, 1], image[1, 1])
    with pytest.raises(ValueError, match="differ in size"):
        imaging.overlay(image, np.zeros((3, 3)))


def test_the_salient_region_gets_an_outline() -> None:
    s = np.zeros((5, 6))
    s[1:4, 1:5] = 1.0  # a 3 x 4 block ...
    s[:, 5] = 0.7  # ... joined on its right to a column along the image's border (not an edge by itself)
    edge = imaging.region_edge(s)
    # The block's top and bottom rows and its left pixel touch s = 0; its middle row from x = 2 on does not.
    assert edge[1:4, 1:5].tolist() == [[True] * 4, [True, False, False, False], [True] * 4]
    assert edge[:, 5].tolist() == [True, False, False, False, True]
    assert not edge[s < 0.5].any()
    out = imaging.overlay(np.zeros((5, 6, 3)), s)
    np.testing.assert_allclose(out[edge], np.broadcast_to(imaging.OUTLINE, (edge.sum(), 3)))
    np.testing.assert_allclose(out[0, 0], 0.0)


def test_signed_difference_keeps_the_sign() -> None:
    clean = np.full((1, 3, 1), 0.5)
    adv = np.array([[[0.52], [0.49], [0.5]]])
    np.testing.assert_allclose(imaging.signed_difference(clean, adv)[0, :, 0], [1.0, 0.25, 0.5])
