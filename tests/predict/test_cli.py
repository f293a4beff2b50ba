"""``depthart predict`` end to end on a tiny random-weight checkpoint, outputs read back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from depthcore import viz as vis
from depthcore.cli import main
from tests.helpers.checkpoints import random_rgb


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["predict", "-q", "--device", "cpu", *argv])
    return code, capsys.readouterr().err


def test_mixed_folder_writes_valid_and_lists_failures(tmp_path, tiny_checkpoint, capsys) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(random_rgb(20, 30)).save(src / "rgb.png")
    Image.fromarray(np.full((16, 12, 4), 90, np.uint8)).save(src / "rgba.png")
    Image.fromarray(random_rgb(18, 18)[..., 0]).save(src / "grey.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (src / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        str(src),
        str(tmp_path / "missing.png"),
        "-o",
        str(out),
        "--model",
        str(tiny_checkpoint),
    )
    assert code == 1
    assert "3 failed" in err
    for name in ("broken.png: cannot read image", "empty.jpg: cannot read image", "missing.png"):
        assert name in err
    assert "alpha channel dropped" in err and "greyscale" in err
    for stem, shape in (("rgb", (20, 30)), ("rgba", (16, 12)), ("grey", (18, 18))):
        assert np.load(out / f"{stem}_depth.npy").shape == shape
        assert (out / f"{stem}_depth_color.png").is_file()
    assert not list(out.glob("broken*")) and not list(out.glob("empty*"))


def test_every_output_format_reads_back(tmp_path, tiny_checkpoint, capsys) -> None:
    Image.fromarray(random_rgb(21, 35)).save(tmp_path / "scene.png")
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        str(tmp_path / "scene.png"),
        "-o",
        str(out),
        "--model",
        str(tiny_checkpoint),
        "--ply",
        "--scales",
        "--samples",
        "4",
    )
    assert code == 0, err
    depth_HW = np.load(out / "scene_depth.npy")
    assert depth_HW.shape == (21, 35) and depth_HW.dtype == np.float32
    with Image.open(out / "scene_depth.png") as img:
        assert img.mode == "I;16"
    np.testing.assert_allclose(
        vis.read_depth_png16(out / "scene_depth.png"),
        depth_HW,
        rtol=0,
        atol=np.ptp(depth_HW) / 65534,
    )
    with Image.open(out / "scene_depth_color.png") as img:
        assert img.mode == "RGB" and img.size == (35, 21)
    fields, vertex = vis.read_ply(out / "scene.ply")
    assert fields["element"] == f"vertex {21 * 35}" and len(vertex) == 21 * 35
    std_HW = np.load(out / "scene_std.npy")
    assert std_HW.shape == (21, 35) and std_HW.max() > 0
    assert (out / "scene_scales.png").is_file() and (out / "scene_std.png").is_file()


def test_seed_determinism(tmp_path, tiny_checkpoint, capsys) -> None:
    """Sampling: same seed, same bytes; another seed, another map. Expected: seed-free."""
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "a.png")
    depths = {}
    runs = [("x", "3", "sample"), ("y", "3", "sample"), ("z", "4", "sample")]
    runs += [("e3", "3", "expected"), ("e4", "4", "expected")]
    for run, seed, decoding in runs:
        code, err = _run(
            capsys,
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / run),
            "--model",
            str(tiny_checkpoint),
            "--seed",
            seed,
            "--decoding",
            decoding,
            "--outputs",
            "npy",
        )
        assert code == 0, err
        depths[run] = np.load(tmp_path / run / "a_depth.npy")
    assert np.array_equal(depths["x"], depths["y"])
    assert not np.array_equal(depths["x"], depths["z"])
    assert np.array_equal(depths["e3"], depths["e4"])
    assert not np.array_equal(depths["e3"], depths["x"])


def test_model_errors_are_one_clear_line(tmp_path, capsys, monkeypatch) -> None:
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, err = _run(capsys, "a.png", "-o", "out")
    assert code == 1 and "run `dvc repro` first" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, "a.png", "-o", "out", "--model", str(tmp_path / "none.safetensors"))
    assert code == 1 and "none.safetensors: checkpoint not found" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [["--outputs", "npy,jpeg"], ["--batch-size", "0"]])
def test_bad_options_exit_2(tmp_path, capsys, bad) -> None:
    code, err = _run(capsys, "a.png", "-o", str(tmp_path), *bad)
    assert code == 2 and err.startswith("error:")


def test_a_write_failing_half_way_leaves_none_of_that_images_files(
    tmp_path, tiny_checkpoint, capsys, monkeypatch
) -> None:
    """Disk full while writing an image's colour map: its .npy/.png go too, others stay."""
    import errno

    for name in ("a", "b"):
        Image.fromarray(random_rgb(16, 20, seed=len(name))).save(tmp_path / f"{name}.png")
    real = vis.save_rgb_png

    def full_for_b(path, *args, **kwargs):
        if path.name.startswith("b_"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(vis, "save_rgb_png", full_for_b)
    out = tmp_path / "out"
    code, err = _run(
        capsys, str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out),
        "--model", str(tiny_checkpoint),
    )  # fmt: skip
    assert code == 1 and "b.png: cannot write outputs" in err
    assert (out / "a_depth.npy").is_file() and (out / "a_depth_color.png").is_file()
    assert not list(out.glob("b*")), sorted(p.name for p in out.iterdir())
