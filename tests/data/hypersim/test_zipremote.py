"""Central-directory parsing by range reads, including the ZIP64 records of multi-GB zips."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from depthcore.data.hypersim.zipremote import read_central_directory
from depthcore.errors import DataError


def _zip(members: dict[str, bytes], comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    return buf.getvalue()


def _as_zip64(blob: bytes) -> bytes:
    """Rewrite a small zip's end records the way ZIP64 writers do (sizes moved to 64-bit)."""
    eocd_at = blob.rindex(b"PK\x05\x06")
    n, cd_size, cd_offset, n_comment = struct.unpack("<HIIH", blob[eocd_at + 10 : eocd_at + 22])
    comment = blob[eocd_at + 22 : eocd_at + 22 + n_comment]
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd_at, 1)
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, n_comment
    )
    return blob[:eocd_at] + record + locator + eocd + comment


@pytest.mark.parametrize("zip64", [False, True])
@pytest.mark.parametrize("comment", [b"", b"c" * 3000])
def test_directory_matches_zipfile(zip64: bool, comment: bytes) -> None:
    members = {f"ai_001_001/images/f{i}.hdf5": bytes(range(256)) * (i + 1) for i in range(5)}
    blob = _zip(members, comment)
    if zip64:
        blob = _as_zip64(blob)
    reads: list[tuple[int, int]] = []

    def read(a: int, b: int) -> bytes:
        reads.append((a, b))
        return blob[a:b]

    got = read_central_directory(read, len(blob), "mem.zip")
    want = zipfile.ZipFile(io.BytesIO(blob)).infolist()
    assert [(m.name, m.crc32, m.size, m.compressed_size, m.header_offset) for m in got] == [
        (i.filename, i.CRC, i.file_size, i.compress_size, i.header_offset) for i in want
    ]
    assert len(reads) <= 5  # tail (twice if commented), [ZIP64 locator, record], directory


def test_not_a_zip_is_reported_with_its_name() -> None:
    blob = b"x" * 5000
    with pytest.raises(DataError, match="scene.zip: not a zip file"):
        read_central_directory(lambda a, b: blob[a:b], len(blob), "scene.zip")
    with pytest.raises(DataError, match="tiny.zip: not a zip file"):
        read_central_directory(lambda a, b: b"", 3, "tiny.zip")
