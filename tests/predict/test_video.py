"""``depthart predict`` on video: a short generated clip through the tiny checkpoint, read back."""

from __future__ import annotations

import json

import av  # the video extra, part of dev: a missing install fails here, not skips
import numpy as np
import pytest
from PIL import Image

from depthcore import viz as vis
from depthcore.cli import main
from depthcore.errors import DataError
from depthcore.predict.video import align_clip, read_clip, write_video
from depthcore.synth.walk import render_walk

FRAMES = 4


@pytest.fixture(scope="module")
def walk_rgb() -> np.ndarray:
    """Four 32x32 frames of a camera walking through a synthetic room."""
    rgb_THW3, depth_THW = render_walk(FRAMES, 32, 32, seed=3)
    assert np.isfinite(depth_THW).mean() > 0.5  # the room, not the void
    return rgb_THW3


def _predict(capsys, *argv: str) -> tuple[int, str]:
    code = main(["predict", "-q", "--device", "cpu", *argv])
    return code, capsys.readouterr().err


def test_clip_writes_every_output(tmp_path, tiny_checkpoint, walk_rgb, capsys) -> None:
    write_video(tmp_path / "walk.mp4", list(walk_rgb), fps=8)
    out = tmp_path / "out"
    code, err = _predict(
        capsys, str(tmp_path / "walk.mp4"), "-o", str(out), "--model", str(tiny_checkpoint)
    )
    assert code == 0, err
    clip = out / "walk"
    record = json.loads((clip / "align.json").read_text())
    assert record["align"] == "clip" and record["frames"] == FRAMES
    assert len(record["maps"]) == FRAMES and record["maps"][0] == {"scale": 1.0, "shift": 0.0}
    for t in range(FRAMES):
        depth = np.load(clip / "frames" / f"{t:05d}_depth.npy")
        assert depth.shape == (32, 32) and np.all(depth > 0)
        png = vis.read_depth_png16(clip / "frames" / f"{t:05d}_depth.png")
        np.testing.assert_allclose(png, depth, rtol=1e-3, atol=1e-4 * float(depth.max()))
    with av.open(str(clip / "depth.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES and decoded[0].shape == (32, 32, 3)
    assert len(record["flicker"]["--align clip"]) == FRAMES - 1
    with Image.open(clip / "flicker.png") as fig:
        assert fig.width > 100


def test_frame_folder_and_align_frame(tmp_path, tiny_checkpoint, walk_rgb, capsys) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, rgb in enumerate(walk_rgb):
        Image.fromarray(rgb).save(frames / f"f{t:03d}.png")
    out = tmp_path / "out"
    code, err = _predict(
        capsys, str(frames), "--video", "--align", "frame", "-o", str(out),
        "--model", str(tiny_checkpoint), "--outputs", "npy",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "frames" / "align.json").read_text())
    assert record["maps"] == [{"scale": 1.0, "shift": 0.0}] * FRAMES
    assert len(list((out / "frames" / "frames").glob("*_depth.npy"))) == FRAMES
    assert not (out / "frames" / "depth.mp4").exists()  # color not asked for


def test_bad_video_fails_in_one_line_naming_it(tmp_path, tiny_checkpoint, capsys) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    code, err = _predict(
        capsys, str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint)
    )
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(bad) in lines[0] and "cannot read video" in lines[0]
    assert not (tmp_path / "out" / "broken").exists()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "still.png")
    with pytest.raises(DataError, match="still.png: not a video"):
        read_clip(tmp_path / "still.png", max_pixels=10**6)  # beside a clip: not a 1-frame clip
    with pytest.raises(DataError, match="differs from"):
        folder = tmp_path / "mixed"
        folder.mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(folder / "b.png")
        read_clip(folder, max_pixels=10**6)


def test_clip_alignment_puts_every_frame_in_the_first_frames_space() -> None:
    rng = np.random.default_rng(0)
    base_HW = rng.uniform(-1, 1, (16, 16))
    affine = [(1.0, 0.0), (0.5, 0.2), (2.0, -0.3), (1.5, 0.1)]
    preds = [a * base_HW + b for a, b in affine]
    aligned, maps = align_clip(preds, "clip")
    for frame, (scale, shift), (a, b) in zip(aligned, maps, affine, strict=True):
        np.testing.assert_allclose(frame, base_HW, atol=1e-9)  # one scale for the clip
        assert scale == pytest.approx(1.0 / a) and shift == pytest.approx(-b / a)
    same, unit = align_clip(preds, "frame")
    assert unit == [(1.0, 0.0)] * len(preds)
    np.testing.assert_allclose(same[2], preds[2])
    with pytest.raises(ValueError, match="--align"):
        align_clip(preds, "scene")
