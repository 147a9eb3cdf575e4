"""Dataset zip validation: both layouts read correctly, and every bad archive is refused with a message."""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.datasets.archive import ArchiveError, ArchiveImage, read_archive, sha256_hex


def _img(seed: int, size=(8, 6), fmt="PNG", mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _gray(arr: np.ndarray, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _map_of(item: ArchiveImage) -> np.ndarray:
    assert item.salience_png is not None
    with Image.open(io.BytesIO(item.salience_png)) as im:
        assert im.mode == "L" and im.format == "PNG"
        return np.asarray(im)


# ---------------------------------------------------------------------------------------------------------------
# valid archives


def test_imagefolder_basic(tmp_path):
    members = {
        "dog/c.jpg": _img(3, fmt="JPEG"),
        "cat/b.png": _img(2),
        "cat/a.png": _img(1, size=(10, 4)),
        "cat/deeper/d.png": _img(4),
    }
    images = read_archive(_zip(tmp_path / "d.zip", members))
    assert [(i.label, i.filename) for i in images] == [
        ("cat", "cat/a.png"),
        ("cat", "cat/b.png"),
        ("cat", "cat/deeper/d.png"),
        ("dog", "dog/c.jpg"),
    ]
    a = images[0]
    assert (a.width, a.height) == (10, 4)
    assert a.data == members["cat/a.png"]  # bytes unchanged
    assert all(i.salience_png is None and i.split is None for i in images)
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_imagefolder_top_folder_splits_salience_and_litter(tmp_path):
    left_white = np.zeros((3, 4), dtype=np.uint8)
    left_white[:, :2] = 255  # 4x3 map of an 8x6 image: resized bilinearly
    members = {
        "mydata/README.md": b"# my dataset\n",
        "mydata/train/cat/001.png": _img(1),
        "mydata/train/dog/002.jpg": _img(2, fmt="JPEG"),
        "mydata/test/cat/003.png": _img(3),
        "mydata/test/dog/004.png": _img(4),
        "mydata/salience/train/cat/001.png": _gray(np.full((6, 8), 200)),
        "mydata/salience/dog/002.jpg.png": _gray(left_white),  # split-less, full-name form
        "mydata/.DS_Store": b"\x00junk",
        "__MACOSX/mydata/train/cat/._001.png": b"\x00\x05\x16\x07junk",
    }
    images = read_archive(_zip(tmp_path / "d.zip", members))
    by_name = {i.filename: i for i in images}
    assert sorted(by_name) == [
        "mydata/test/cat/003.png",
        "mydata/test/dog/004.png",
        "mydata/train/cat/001.png",
        "mydata/train/dog/002.jpg",
    ]
    assert by_name["mydata/train/cat/001.png"].split == "train"
    assert by_name["mydata/test/dog/004.png"].split == "test"
    assert by_name["mydata/test/dog/004.png"].label == "dog"
    m = _map_of(by_name["mydata/train/cat/001.png"])
    assert m.shape == (6, 8) and np.all(m == 200)
    m = _map_of(by_name["mydata/train/dog/002.jpg"])
    assert m.shape == (6, 8)
    assert np.all(m[:, :3] == 255) and np.all(m[:, 5:] == 0)  # bilinear ramp only in the middle columns
    assert by_name["mydata/test/cat/003.png"].salience_png is None


def test_duplicate_bytes_keep_first(tmp_path):
    same = _img(7)
    members = {"a/1.png": same, "a/2.png": _img(8), "b/1.png": same, "b/2.png": _img(9)}
    images = read_archive(_zip(tmp_path / "d.zip", members))
    assert [i.filename for i in images] == ["a/1.png", "a/2.png", "b/2.png"]


def test_csv_manifest_with_png_maps_and_split(tmp_path):
    rows = [
        "image_path,image_class,salience_map_path,split",
        "images/x.png,cat,maps/x.png,train",
        "images/y.png,dog,,test",
        "./images/z.png,dog,maps/z.png,",
    ]
    z_map = np.zeros((6, 8), dtype=np.uint8)
    z_map[1:3, 2:5] = 255
    members = {
        "study/manifest.csv": ("\ufeff" + "\n".join(rows) + "\n").encode(),  # BOM is fine
        "study/images/x.png": _img(1),
        "study/images/y.png": _img(2),
        "study/images/z.png": _img(3),
        "study/images/unlisted.png": _img(4),  # not in the manifest: ignored
        "study/maps/x.png": _gray(np.full((6, 8), 255), mode="1"),
        "study/maps/z.png": _gray(z_map),
    }
    images = read_archive(_zip(tmp_path / "d.zip", members))
    assert [(i.filename, i.label, i.split) for i in images] == [  # row order
        ("study/images/x.png", "cat", "train"),
        ("study/images/y.png", "dog", "test"),
        ("study/images/z.png", "dog", None),
    ]
    assert np.all(_map_of(images[0]) == 255)
    assert images[1].salience_png is None
    np.testing.assert_array_equal(_map_of(images[2]), z_map)


def test_csv_manifest_with_boxes(tmp_path):
    rows = [
        "image_path,image_class,bounding_boxes",
        'a.png,cat,"[[1, 2, 3, 2], [6, 0, 2, 1]]"',
        'b.png,dog,"[0.5, 0.5, 1, 1]"',  # one flat box, fractional: every touched pixel counts
        'c.png,dog,"[[0, 0, 0, 0]]"',  # the authors' 'no salient region'
        "d.png,cat,",
    ]
    members = {"labels.csv": "\n".join(rows).encode()}
    members |= {f"{n}.png": _img(i) for i, n in enumerate("abcd")}
    images = read_archive(_zip(tmp_path / "d.zip", members))
    expect = np.zeros((6, 8), dtype=np.uint8)
    expect[2:4, 1:4] = 255
    expect[0:1, 6:8] = 255
    np.testing.assert_array_equal(_map_of(images[0]), expect)
    expect = np.zeros((6, 8), dtype=np.uint8)
    expect[0:2, 0:2] = 255
    np.testing.assert_array_equal(_map_of(images[1]), expect)
    assert not _map_of(images[2]).any()
    assert images[3].salience_png is None


def test_reads_from_file_object(tmp_path):
    path = _zip(tmp_path / "d.zip", {"a/1.png": _img(1), "b/1.png": _img(2)})
    with open(path, "rb") as fh:
        assert len(read_archive(fh)) == 2
    assert len(read_archive(io.BytesIO(path.read_bytes()))) == 2


# ---------------------------------------------------------------------------------------------------------------
# refused archives

VALID = {"a/1.png": _img(101), "b/1.png": _img(102)}


def _refused(tmp_path, members, match, **kw):
    with pytest.raises(ArchiveError, match=match):
        read_archive(_zip(tmp_path / "bad.zip", members), **kw)


def test_not_a_zip(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ArchiveError, match="not a zip"):
        read_archive(p)
    with pytest.raises(ArchiveError, match="cannot read"):
        read_archive(tmp_path / "missing.zip")


def test_path_traversal_and_absolute(tmp_path):
    _refused(tmp_path, VALID | {"../evil.png": _img(1)}, r"'\.\./evil\.png'.*outside the archive")
    _refused(tmp_path, VALID | {"a/../../evil.png": _img(1)}, "outside the archive")
    _refused(tmp_path, VALID | {"/etc/evil.png": _img(1)}, "absolute path")


def test_symlink_member(tmp_path):
    path = _zip(tmp_path / "bad.zip", VALID)
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("a/link.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match=r"'a/link\.png' is a symbolic link"):
        read_archive(path)


def test_size_limits(tmp_path):
    big = {"a/1.png": _img(1, size=(64, 64)), "b/1.png": _img(2, size=(64, 64))}
    declared = sum(len(v) for v in big.values())
    _refused(tmp_path, big, "declares .* bytes uncompressed, over the limit", max_bytes=declared - 1)
    assert len(read_archive(_zip(tmp_path / "ok.zip", big), max_bytes=declared)) == 2
    _refused(tmp_path, VALID | {"c/1.png": _img(3)}, "3 members, over the limit of 2", max_files=2)


def _patch_uncompressed_size(path: Path, member: str, fake: int) -> None:
    """Rewrite the uncompressed size of `member` in its local header and central directory entry."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    buf = bytearray(path.read_bytes())
    struct.pack_into("<I", buf, info.header_offset + 22, fake)
    pos = buf.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", buf, pos + 28)[0]
        if buf[pos + 46 : pos + 46 + name_len] == member.encode():
            struct.pack_into("<I", buf, pos + 24, fake)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(buf))


def test_declared_size_lies(tmp_path):
    # a zip bomb's trick: the headers claim 100 bytes, the deflate stream holds 1 MiB of zeros
    path = _zip(tmp_path / "bomb.zip", VALID | {"a/2.png": b"\x00" * (1 << 20)})
    _patch_uncompressed_size(path, "a/2.png", 100)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("a/2.png").file_size == 100  # the lie is what the directory says
    with pytest.raises(ArchiveError, match=r"'a/2\.png' cannot be decompressed"):
        read_archive(path, max_bytes=10_000)


def test_not_an_image_truncated_and_unsupported(tmp_path):
    _refused(tmp_path, VALID | {"a/notes.txt": b"hello"}, r"'a/notes\.txt' is not an image")
    png = _img(5, size=(32, 32))
    _refused(tmp_path, VALID | {"a/cut.png": png[: len(png) // 2]}, r"'a/cut\.png' is a truncated or corrupt")
    _refused(tmp_path, VALID | {"a/scan.tif": _img(6, fmt="TIFF")}, r"'a/scan\.tif' is not an image in a supported")


def _png_header_only(width: int, height: int) -> bytes:
    """A 1-bit grayscale PNG claiming width x height pixels, with a tiny (truncated) IDAT: bytes cost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def test_decompression_bombs(tmp_path):
    # over our limit (49 M > 40 M pixels) but under Pillow's own warning threshold: our header check
    _refused(tmp_path, VALID | {"a/bomb.png": _png_header_only(7000, 7000)}, r"'a/bomb\.png' is 7000x7000")
    # far over Pillow's limit: Pillow refuses at open, we report it
    _refused(tmp_path, VALID | {"a/bomb.png": _png_header_only(100_000, 100_000)}, r"'a/bomb\.png'.*pixels")
    # a real, complete image over a lowered limit
    _refused(
        tmp_path, VALID | {"a/big.png": _img(1, size=(40, 30))}, "1200 pixels, over the limit of 1000", max_pixels=1000
    )


def test_bad_salience_maps(tmp_path):
    colour = _img(9)  # an RGB "heat map"
    _refused(tmp_path, VALID | {"salience/a/1.png": colour}, "is a colour image")
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 6)).save(cmyk, format="JPEG")
    _refused(tmp_path, VALID | {"salience/a/1.png": cmyk.getvalue()}, "pixel mode 'CMYK'")
    _refused(tmp_path, VALID | {"salience/a/1.png": _gray(np.zeros((8, 6)))}, "aspect ratios differ")
    _refused(tmp_path, VALID | {"salience/a/9.png": _gray(np.zeros((6, 8)))}, r"'salience/a/9\.png' matches no image")


def _csv_zip(tmp_path, rows, extra=None):
    members = {"manifest.csv": "\n".join(rows).encode(), "x.png": _img(1), "y.png": _img(2)}
    return _zip(tmp_path / "m.zip", members | (extra or {}))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (["image_path,image_class", "x.png,cat", "missing.png,dog"], r"line 3: image_path 'missing\.png' is not in"),
        (["image_path,image_class", "x.png,cat", "../y.png,dog"], r"line 3: image_path '\.\./y\.png' points outside"),
        (["path,class", "x.png,cat"], "lacks image_path and image_class"),
        (["image_path,image_class", "x.png,", "y.png,dog"], "line 2: image_class is empty"),
        (["image_path,image_class,bounding_boxes", 'x.png,cat,"[[1,2,3"', "y.png,dog,"], "line 2: .*not valid JSON"),
        (["image_path,image_class,bounding_boxes", 'x.png,cat,"[[6,4,3,3]]"', "y.png,dog,"], "outside the 8x6"),
        (["image_path,image_class,bounding_boxes", 'x.png,cat,"[[1,1,-1,2]]"', "y.png,dog,"], "negative width"),
        (["image_path,image_class,bounding_boxes", 'x.png,cat,"[[1,1,true,2]]"', "y.png,dog,"], "4 finite numbers"),
        (["image_path,image_class,bounding_boxes", 'x.png,cat,"{}"', "y.png,dog,"], "must be a JSON list"),
        (["image_path,image_class,salience_map_path", "x.png,cat,nomap.png", "y.png,dog,"], "'nomap.png' is not in"),
        (["image_path,image_class,salience_map_path,bounding_boxes", 'x.png,cat,y.png,"[]"'], "not both"),
        (["image_path,image_class", "x.png,cat", "y.png,cat"], "only 1 class"),
        (["image_path,image_class"], "holds no images"),
    ],
)
def test_bad_manifests(tmp_path, rows, match):
    with pytest.raises(ArchiveError, match=match):
        read_archive(_csv_zip(tmp_path, rows))


def test_bad_layouts(tmp_path):
    _refused(tmp_path, {"README.txt": b"nothing here"}, "holds no images")
    _refused(tmp_path, {"docs/": b""}, "holds no files")
    _refused(tmp_path, {"cat/1.png": _img(1), "cat/2.png": _img(2)}, "only 1 class")
    _refused(tmp_path, VALID | {"loose.png": _img(3)}, r"'loose\.png' is not inside a class folder")
    _refused(tmp_path, VALID | {"train/c/1.png": _img(3)}, r"mixes split folders \(train\) with class folders \(a, b\)")
    _refused(tmp_path, {"train/1.png": _img(3), "train/c/2.png": _img(4)}, r"lies directly in train/")
    _refused(tmp_path, VALID | {"other.csv": b"a,b", "more.csv": b"a,b"}, "several CSV files")
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        read_archive(io.BytesIO(b""), max_bytes=0)


def test_csv_cell_json_boxes_roundtrip(tmp_path):
    # boxes written with json.dumps by a researcher's script round-trip exactly
    boxes = [[0, 0, 8, 6]]
    rows = ["image_path,image_class,bounding_boxes", f'x.png,cat,"{json.dumps(boxes)}"', "y.png,dog,"]
    images = read_archive(_csv_zip(tmp_path, rows))
    assert np.all(_map_of(images[0]) == 255)
