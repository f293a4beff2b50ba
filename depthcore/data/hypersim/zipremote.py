"""Read a remote zip's directory and single members through byte ranges (ZIP64 included).

A Hypersim scene zip is 1-20 GB, of which colour, depth and entity ids are a
few percent. The zip format makes selective reads cheap: the end-of-central-
directory record (last 22..65,557 bytes) points at the central directory,
which lists every member's size, CRC-32 and local-header offset; one more
range read per member gets its local header, then its compressed bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from depthcore.errors import DataError

EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"
CENTRAL_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"
LOCAL_HEADER_LEN = 30
_EOCD_LEN = 22
_MAX_COMMENT = 0xFFFF

ReadRange = Callable[[int, int], bytes]


@dataclass(frozen=True)
class ZipMember:
    """One central-directory entry: what to fetch and how to verify it."""

    name: str
    method: int  # 0 stored, 8 deflate
    flags: int
    crc32: int
    compressed_size: int
    size: int
    header_offset: int


def _eocd(read: ReadRange, zip_size: int, where: str) -> tuple[int, int, int]:
    """(entries, central directory size, central directory offset), ZIP64-aware."""
    if zip_size < _EOCD_LEN:
        raise DataError(f"{where}: not a zip file ({zip_size} bytes)")
    pos, tail = -1, b""
    for tail_len in (1024, _EOCD_LEN + _MAX_COMMENT + 20):  # most zips have no comment
        tail_len = min(zip_size, tail_len)
        tail = read(zip_size - tail_len, zip_size)
        pos = tail.rfind(EOCD_SIG)
        if pos >= 0 or tail_len == zip_size:
            break
    if pos < 0 or len(tail) - pos < _EOCD_LEN:
        raise DataError(f"{where}: not a zip file (no end-of-central-directory record)")
    entries, cd_size, cd_offset = struct.unpack("<10xHII", tail[pos : pos + 20])
    if entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        eocd_at = zip_size - len(tail) + pos
        loc = read(eocd_at - 20, eocd_at) if eocd_at >= 20 else b""
        if not loc.startswith(ZIP64_LOCATOR_SIG):
            raise DataError(f"{where}: ZIP64 sizes without a ZIP64 locator")
        (z64_offset,) = struct.unpack("<4xQ4x", loc[4:])
        rec = read(z64_offset, z64_offset + 56)
        if not rec.startswith(ZIP64_EOCD_SIG):
            raise DataError(f"{where}: bad ZIP64 end-of-central-directory at {z64_offset}")
        entries, cd_size, cd_offset = struct.unpack("<32xQQQ", rec)
    return entries, cd_size, cd_offset


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF fields by the values of the ZIP64 extra field (id 0x0001)."""
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[i : i + 4])
        body = extra[i + 4 : i + 4 + length]
        if tag == 0x0001:
            vals = list(struct.unpack(f"<{len(body) // 8}Q", body[: len(body) // 8 * 8]))
            if size == 0xFFFFFFFF:
                size = vals.pop(0)
            if csize == 0xFFFFFFFF:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF:
                offset = vals.pop(0)
        i += 4 + length
    return size, csize, offset


def read_central_directory(read: ReadRange, zip_size: int, where: str) -> list[ZipMember]:
    """All members of the zip behind ``read`` (two or three range reads in all)."""
    entries, cd_size, cd_offset = _eocd(read, zip_size, where)
    if cd_offset + cd_size > zip_size:
        raise DataError(
            f"{where}: central directory runs past the end of the file (truncated zip?)"
        )
    cd = read(cd_offset, cd_offset + cd_size)
    members, i = [], 0
    for _ in range(entries):
        if cd[i : i + 4] != CENTRAL_SIG:
            raise DataError(f"{where}: corrupt central directory at entry {len(members)}")
        (
            _,
            _,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            size,
            n_name,
            n_extra,
            n_comment,
            _,
            _,
            _,
            offset,
        ) = struct.unpack("<4sHHHHHHIIIHHHHHII", cd[i : i + 46])
        raw_name = cd[i + 46 : i + 46 + n_name]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        extra = cd[i + 46 + n_name : i + 46 + n_name + n_extra]
        size, csize, offset = _zip64_extra(extra, size, csize, offset)
        members.append(ZipMember(name, method, flags, crc, csize, size, offset))
        i += 46 + n_name + n_extra + n_comment
    return members


def member_data_offset(read: ReadRange, member: ZipMember, where: str) -> int:
    """Where ``member``'s compressed bytes start (after its local header)."""
    header = read(member.header_offset, member.header_offset + LOCAL_HEADER_LEN)
    if not header.startswith(LOCAL_SIG):
        raise DataError(f"{where}: {member.name}: bad local header at {member.header_offset}")
    n_name, n_extra = struct.unpack("<HH", header[26:30])
    return member.header_offset + LOCAL_HEADER_LEN + n_name + n_extra


def check_supported(member: ZipMember, where: str) -> None:
    if member.flags & 0x1:
        raise DataError(f"{where}: {member.name}: encrypted members are not supported")
    if member.method not in (0, 8):
        raise DataError(f"{where}: {member.name}: compression method {member.method} unsupported")


def inflate_to(
    part: Path, member: ZipMember, target: Path, where: str, chunk: int = 1 << 20
) -> None:
    """Decompress the raw member bytes in ``part`` into ``target``; verify size and CRC-32.

    Raises :class:`DataError` naming the member on a size or CRC mismatch or
    corrupt deflate data (``target`` is then incomplete; the caller discards it).
    """
    crc, size = 0, 0
    inflater = zlib.decompressobj(-15) if member.method == 8 else None
    try:
        with open(part, "rb") as src, open(target, "wb") as dst:
            while block := src.read(chunk):
                out = inflater.decompress(block) if inflater else block
                crc, size = zlib.crc32(out, crc), size + len(out)
                dst.write(out)
            if inflater:
                tail = inflater.flush()
                crc, size = zlib.crc32(tail, crc), size + len(tail)
                dst.write(tail)
    except zlib.error as exc:
        raise DataError(f"{where}: {member.name}: corrupt deflate data ({exc})") from exc
    if size != member.size:
        raise DataError(
            f"{where}: {member.name}: size {size} != {member.size} from the zip directory"
        )
    if crc != member.crc32:
        raise DataError(
            f"{where}: {member.name}: CRC-32 mismatch "
            f"(got {crc:08x}, zip directory says {member.crc32:08x})"
        )


def file_crc32(path: Path, chunk: int = 1 << 20) -> int:
    """CRC-32 of a local file (to decide whether a previous download is intact)."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc
