"""Fuzz-style: seeded truncations, bit flips and random bytes of every input kind.

Each reader, given a damaged file, must either succeed (a flipped bit inside tensor
data cannot be noticed) or raise the one user-facing error type of its kind, whose
message names the file. Any other exception (struct.error, UnicodeDecodeError,
KeyError, ...) is a bug: it would reach the user as a traceback.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from depthcore.config import ConfigError, load_section
from depthcore.data.hypersim.reader import read_distance
from depthcore.data.hypersim.tables import (
    CAMERA_FILE,
    SPLIT_FILE,
    load_camera_table,
    load_split_table,
)
from depthcore.data.hypersim.zipremote import read_central_directory
from depthcore.errors import CheckpointError, DataError, DepthcoreError
from depthcore.models import create_model, resolve_config
from depthcore.models.checkpoint import load_model, save_model
from depthcore.models.model_dir import checkpoint_in_model_dir
from depthcore.predict.images import load_rgb
from depthcore.training.train_config import TrainConfig

SEED = 1101
VARIANTS = 48


def mutations(blob: bytes, n: int = VARIANTS, seed: int = SEED) -> Iterator[bytes]:
    """The empty file, then ``n`` seeded variants: truncations, byte flips, random bytes,
    and a chunk of the file spliced in again."""
    rng = random.Random(seed)
    yield b""
    for k in range(n):
        kind = k % 4
        if kind == 0:
            yield blob[: rng.randrange(len(blob))]
        elif kind == 1:
            data = bytearray(blob)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            yield bytes(data)
        elif kind == 2:
            yield rng.randbytes(rng.randint(1, 4096))
        else:
            a = rng.randrange(len(blob))
            b = min(len(blob), a + rng.randint(1, 256))
            at = rng.randrange(len(blob))
            yield blob[:at] + blob[a:b] + blob[at:]


def _fuzz(
    blob: bytes, read: Callable[[bytes], object], error: type[DepthcoreError], name: str
) -> int:
    """Run ``read`` on every mutation; return how many were rejected (with ``error``)."""
    rejected = 0
    for i, variant in enumerate(mutations(blob)):
        try:
            read(variant)
        except error as exc:
            assert name in str(exc), (i, str(exc))
            rejected += 1
        except Exception as exc:  # noqa: BLE001 - the point: report any other type
            pytest.fail(f"variant {i}: {type(exc).__name__} escaped: {exc}")
    return rejected


def _png_and_jpeg() -> list[bytes]:
    rng = np.random.default_rng(SEED)
    img = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = []
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        img.save(buf, fmt)
        out.append(buf.getvalue())
    return out


@pytest.mark.parametrize("blob", _png_and_jpeg(), ids=["png", "jpeg"])
def test_fuzz_image(blob: bytes) -> None:
    rejected = _fuzz(blob, lambda b: load_rgb(b, name="photo.img"), DataError, "photo.img")
    assert rejected >= VARIANTS // 4  # at least the random-bytes variants


def test_fuzz_safetensors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    good = tmp_path / "good.safetensors"
    save_model(good, vae, var, resolve_config("tiny"), meta={"space": "sqrt_disparity"})
    target = tmp_path / "model.safetensors"

    def read(data: bytes) -> None:
        target.write_bytes(data)
        load_model(target)

    assert _fuzz(good.read_bytes(), read, CheckpointError, "model.safetensors") >= VARIANTS // 2


def test_fuzz_hdf5(tmp_path: Path) -> None:
    good = tmp_path / "good.hdf5"
    with h5py.File(good, "w") as f:
        f.create_dataset(
            "dataset", data=np.linspace(1, 9, 24 * 32, dtype=np.float16).reshape(24, 32)
        )
    target = tmp_path / "frame.0000.depth_meters.hdf5"

    def read(data: bytes) -> None:
        target.write_bytes(data)
        read_distance(target)

    assert _fuzz(good.read_bytes(), read, DataError, target.name) >= VARIANTS // 4


def test_fuzz_zip_directory() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(6):
            zf.writestr(
                f"ai_001_001/images/scene_cam_00_final_hdf5/frame.{i:04d}.color.hdf5", b"x" * 300
            )

    def read(data: bytes) -> None:
        def read_range(a: int, b: int) -> bytes:
            if a < 0 or b > len(data) or a > b:  # the file sources' short-read rule
                raise DataError(f"ai_001_001.zip: short read at {a}-{b}")
            return data[a:b]

        read_central_directory(read_range, len(data), "ai_001_001.zip")

    assert _fuzz(buf.getvalue(), read, DataError, "ai_001_001.zip") >= VARIANTS // 4


def test_fuzz_params_yaml(tmp_path: Path) -> None:
    good = Path("params.yaml").read_bytes()
    target = tmp_path / "params.yaml"

    def read(data: bytes) -> None:
        target.write_bytes(data)
        load_section("train", TrainConfig, target)

    assert _fuzz(good, read, ConfigError, "params.yaml") >= VARIANTS // 4


def test_fuzz_mlmodel_yaml(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.safetensors").write_bytes(b"x")
    good = (
        b"artifact_path: model\nflavors:\n  python_function:\n    artifacts:\n"
        b"      checkpoint:\n        path: artifacts/model.safetensors\n"
        b"        uri: model.safetensors\n    loader_module: mlflow.pyfunc.model\n"
    )

    def read(data: bytes) -> None:
        (tmp_path / "MLmodel").write_bytes(data)
        checkpoint_in_model_dir(tmp_path)

    assert _fuzz(good, read, CheckpointError, "MLmodel") >= VARIANTS // 4


@pytest.mark.parametrize("name", [SPLIT_FILE, CAMERA_FILE])
def test_fuzz_csv_tables(tmp_path: Path, name: str) -> None:
    load = load_split_table if name == SPLIT_FILE else load_camera_table
    good = load(None)  # the packaged table, rendered back to CSV as the seed
    good = good.reset_index() if name == CAMERA_FILE else good
    blob = good.head(40).to_csv(index=False).encode()

    def read(data: bytes) -> None:
        (tmp_path / name).write_bytes(data)
        load(tmp_path)

    assert _fuzz(blob, read, DataError, name) >= VARIANTS // 4
