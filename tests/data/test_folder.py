"""The ``folder`` format: your own RGB + depth files behind a manifest, read as a benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from depthcore.data.benchmarks.registry import make_reader
from depthcore.data.folder import FolderReader, read_manifest, read_pfm, write_pfm
from depthcore.errors import DataError, DepthcoreError
from depthcore.synth.folder import generate_folder
from stages.evaluate import main as evaluate_main

H, W = 6, 8


def _frame(root: Path, name: str, depth_HW: np.ndarray, suffix: str, scale: float = 0.001) -> str:
    """Write rgb/<name>.png and depth/<name><suffix>; return the depth path."""
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    rgb = np.random.default_rng(len(name)).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "rgb" / f"{name}.png")
    depth = root / "depth" / f"{name}{suffix}"
    if suffix == ".png":
        units = np.nan_to_num(np.round(depth_HW / scale), nan=0).astype(np.uint16)
        Image.fromarray(units).save(depth)
    elif suffix == ".npy":
        np.save(depth, depth_HW.astype(np.float32))
    else:
        write_pfm(depth, depth_HW)
    return f"depth/{name}{suffix}"


def test_pfm_round_trip_keeps_row_order(tmp_path: Path) -> None:
    depth_HW = np.arange(H * W, dtype=np.float32).reshape(H, W)
    write_pfm(tmp_path / "d.pfm", depth_HW)
    np.testing.assert_array_equal(read_pfm(tmp_path / "d.pfm"), depth_HW)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n8 6\n255\n")
    with pytest.raises(DataError, match="bad.pfm: not a PFM"):
        read_pfm(tmp_path / "bad.pfm")


@pytest.mark.parametrize("suffix", [".png", ".npy", ".pfm"])
def test_each_depth_format_reads_metres_and_marks_holes(tmp_path: Path, suffix: str) -> None:
    depth_HW = np.linspace(0.5, 9.5, H * W, dtype=np.float32).reshape(H, W)
    depth_HW[0, 0] = 0.0 if suffix == ".png" else np.nan  # a hole in the format's own way
    depth_HW[0, 1] = 0.0
    rel = _frame(tmp_path, "a", depth_HW, suffix)
    doc = {"depth_scale": 0.001, "frames": [{"rgb": "rgb/a.png", "depth": rel}]}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    (sample,) = list(make_reader("mine", tmp_path, format="folder"))
    assert sample.name == "rgb/a"
    assert not sample.valid_HW[0, 0] and not sample.valid_HW[0, 1] and sample.valid_HW[1:].all()
    assert sample.depth_HW[0, 0] == 0.0
    tol = 5e-4 if suffix == ".png" else 0.0  # millimetre quantisation
    np.testing.assert_allclose(sample.depth_HW[1:], depth_HW[1:], atol=tol)


def test_mask_range_split_and_csv_manifest(tmp_path: Path) -> None:
    depth_HW = np.full((H, W), 3.0, np.float32)
    depth_HW[5, 7] = 50.0  # beyond max_depth
    rows = []
    for i, split in enumerate(("train", "test", "test")):
        rows.append({"rgb": f"rgb/{i}.png", "depth": _frame(tmp_path, str(i), depth_HW, ".npy")})
        rows[-1]["split"] = split
    mask = np.full((H, W), 255, np.uint8)
    mask[2, 3] = 0
    (tmp_path / "mask").mkdir()
    Image.fromarray(mask).save(tmp_path / "mask" / "1.png")
    rows[1]["mask"] = "mask/1.png"
    lines = ["rgb,depth,mask,split"] + [
        f"{r['rgb']},{r['depth']},{r.get('mask', '')},{r['split']}" for r in rows
    ]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    reader = FolderReader(tmp_path, split="test", max_depth=10.0)
    assert [s.name for s in reader] == ["rgb/1", "rgb/2"]
    first, second = list(reader)
    assert not first.valid_HW[2, 3] and second.valid_HW[2, 3]
    assert not first.valid_HW[5, 7] and first.valid_HW.sum() == H * W - 2
    assert len(FolderReader(tmp_path)) == 3


@pytest.mark.parametrize(
    ("frames", "extra", "message"),
    [
        ([{"rgb": "rgb/a.png"}], {}, r"frame 0: .*missing \['depth'\]"),
        ([{"rgb": "rgb/a.png", "depth": "d/a.exr"}], {}, r"a.exr is not one of"),
        ([{"rgb": "rgb/a.png", "depth": "d/a.png"}], {}, "needs a depth_scale"),
        ([{"rgb": "rgb/a.png", "depth": "d/a.npy", "split": "dev"}], {}, "split 'dev'"),
        ([{"rgb": "a.png", "depth": "a.npy"}] * 2, {}, "frame 1: frame a listed twice"),
        ([{"rgb": "a.png", "depth": "a.npy"}], {"depth_unit": "mm"}, r"unknown key\(s\)"),
    ],
)
def test_bad_manifest_names_the_file_and_row(
    tmp_path: Path, frames: list, extra: dict, message: str
) -> None:
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({**extra, "frames": frames}))
    with pytest.raises(DataError, match=message) as info:
        read_manifest(tmp_path)
    assert str(tmp_path / "manifest.yaml") in str(info.value)


def test_bad_files_fail_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no manifest"):
        read_manifest(tmp_path)
    rel = _frame(tmp_path, "a", np.ones((H, W), np.float32), ".npy")
    np.save(tmp_path / rel, np.ones((H, W + 1), np.float32))
    doc = {"frames": [{"rgb": "rgb/a.png", "depth": rel}]}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DataError, match=r"a.npy: depth \(6, 9\) != rgb \(6, 8\)"):
        FolderReader(tmp_path)[0]
    (tmp_path / rel).write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"a.npy: cannot read"):
        FolderReader(tmp_path)[0]
    with pytest.raises(DepthcoreError, match=r"unknown format 'folders' for 'mine'"):
        make_reader("mine", tmp_path, format="folders")


def test_generated_folder_evaluates_as_an_extra_benchmark(tmp_path: Path) -> None:
    """`evaluate.benchmarks.<name>: {format: folder, ...}` next to a built-in benchmark."""
    from depthcore.synth.benchmarks import generate_benchmark

    root = generate_folder(tmp_path / "my_rooms", ["train", "test", "test", "test"], seed=3)
    csv_root = generate_folder(tmp_path / "csv_rooms", ["test"] * 2, seed=4, manifest="csv")
    formats = {p.suffix for p in (root / "depth").iterdir()}
    assert formats == {".png", ".npy", ".pfm"} and any((root / "mask").iterdir())
    tum = generate_benchmark("tum", tmp_path / "tum", 2, 5, height=48, width=64)
    section = {
        "benchmarks": {
            "my_rooms": {"format": "folder", "root": str(root), "split": "test"},
            "csv_rooms": {"format": "folder", "root": str(csv_root)},
            "tum": {"root": str(tum)},
        },
        "batch_size": 2,
        "num_panels": 1,
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": section}))
    out = tmp_path / "out"
    evaluate_main(
        ["--params", str(params), "--model", "reference:vertical_gradient", "--out", str(out)]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics) == ["csv_rooms", "my_rooms", "tum"]
    assert metrics["my_rooms"]["lsq"]["num_images"] == 3
    assert metrics["csv_rooms"]["median"]["num_images"] == 2
    assert 0.0 < metrics["my_rooms"]["lsq"]["abs_rel"] < 5.0
