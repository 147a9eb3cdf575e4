"""The zip container of an upload, read without trusting it: member paths (no traversal, absolute paths, links
or encryption), the member count, the declared and the actually inflated size (zip bombs).

Its own module because these checks are about the container alone, whatever the members hold; the dataset
layouts (`backend.datasets.archive`) and the image checks (`backend.datasets.archive_images`) build on it.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

MiB = 1 << 20

_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_READ_CHUNK = 1 * MiB


class ArchiveError(ValueError):
    """The upload is not an acceptable dataset archive; the message names the member and what to fix."""


def is_junk(path: str) -> bool:
    """OS litter (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, dotfiles), skipped."""
    parts = path.split("/")
    name = parts[-1]
    return "__MACOSX" in parts[:-1] or name.lower() in _JUNK_NAMES or name.startswith(".")


def safe_name(info: zipfile.ZipInfo) -> str:
    """The member's normalised path; ArchiveError for traversal, absolute paths, links and encryption."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {raw!r} has an absolute path; archive members must have relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {raw!r} points outside the archive ('..' in its path); remove it")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"member {raw!r} is a symbolic link; replace links with the files themselves")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"member {raw!r} is encrypted; upload an archive without a password")
    return "/".join(parts) + ("/" if info.is_dir() else "")


#: Most an archive may inflate to, as a multiple of its compressed size (PNG and JPEG barely compress).
MAX_COMPRESSION_RATIO = 100
#: Inflating this much is always allowed (small archives of well-compressing files, e.g. a CSV manifest).
MIN_INFLATE_BUDGET = 16 * MiB


def inflate_budget(compressed_bytes: int) -> int:
    """Bytes an archive of `compressed_bytes` may inflate to (declared and actually read)."""
    return max(MIN_INFLATE_BUDGET, compressed_bytes * MAX_COMPRESSION_RATIO)


class _Zip:
    """Reads members with a running total of decompressed bytes, whatever the headers claim."""

    def __init__(self, zf: zipfile.ZipFile, max_bytes: int) -> None:
        self.zf = zf
        self.max_bytes = max_bytes
        self.total = 0

    def read(self, info: zipfile.ZipInfo, name: str) -> bytes:
        buf = bytearray()
        try:
            with self.zf.open(info) as fh:
                while chunk := fh.read(_READ_CHUNK):
                    buf += chunk
                    self.total += len(chunk)
                    if self.total > self.max_bytes:
                        raise ArchiveError(
                            f"the archive decompresses to more than {self.max_bytes} bytes (reached at {name!r}); "
                            "split it into smaller uploads"
                        )
                    if len(buf) > info.file_size:
                        raise ArchiveError(
                            f"member {name!r} holds more data than the {info.file_size} bytes its header declares; "
                            "the archive is corrupt or malicious"
                        )
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ArchiveError(
                f"member {name!r} cannot be decompressed ({exc}); its data or declared size is wrong: re-create "
                "the archive"
            ) from exc
        except NotImplementedError as exc:
            raise ArchiveError(
                f"member {name!r} uses an unsupported compression method ({exc}); use deflate or store"
            ) from exc
        if len(buf) != info.file_size:
            raise ArchiveError(
                f"member {name!r} holds {len(buf)} bytes but its header declares {info.file_size}; "
                "the archive is corrupt"
            )
        return bytes(buf)


def open_zip(source: str | Path | BinaryIO, max_bytes: int) -> zipfile.ZipFile:
    try:
        if isinstance(source, str | Path):
            return zipfile.ZipFile(source)
        if not (hasattr(source, "seekable") and source.seekable()):
            # zipfile needs to seek; an archive is at most a little larger than what it decompresses to.
            data = source.read(max_bytes + 64 * MiB + 1)
            if len(data) > max_bytes + 64 * MiB:
                raise ArchiveError(f"the upload is larger than {max_bytes} bytes; split it into smaller uploads")
            source = io.BytesIO(data)
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"the upload is not a zip archive ({exc}); upload a .zip file") from exc
    except OSError as exc:
        raise ArchiveError(f"cannot read the upload: {exc}") from exc


def checked_members(zf: zipfile.ZipFile, max_bytes: int, max_files: int) -> tuple[dict[str, zipfile.ZipInfo], _Zip]:
    """The archive's files by normalised path (folders and litter left out) and a reader bounded by the inflate
    budget; ArchiveError for too many members, unsafe or repeated paths, and declared sizes over the limits."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise ArchiveError(f"the archive has {len(infos)} members, over the limit of {max_files}; split it")
    reader = _Zip(zf, max_bytes)
    members: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        name = safe_name(info)
        declared += info.file_size
        if name.endswith("/") or is_junk(name):
            continue
        if name in members:
            raise ArchiveError(f"member {name!r} appears twice in the archive; keep one")
        members[name] = info
    if declared > max_bytes:
        raise ArchiveError(
            f"the archive declares {declared} bytes uncompressed, over the limit of {max_bytes}; "
            "split it into smaller uploads"
        )
    # A zip bomb: images barely compress, so an archive that inflates to many times its size is refused
    # before a byte is inflated (declared sizes), and a lying header is caught while reading (the budget).
    budget = inflate_budget(sum(info.compress_size for info in infos))
    if declared > budget:
        raise ArchiveError(
            f"the archive declares {declared} bytes uncompressed from {sum(i.compress_size for i in infos)} "
            f"compressed, more than {MAX_COMPRESSION_RATIO} times its size (a zip bomb?); images barely "
            "compress: store them as PNG or JPEG"
        )
    reader.max_bytes = min(max_bytes, budget)
    return members, reader
