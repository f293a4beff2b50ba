"""TUM RGB-D reader: file lists, timestamp association, 16-bit depth scale, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthcore.data.benchmarks.tum import TUMReader, associate, read_file_list
from depthcore.errors import DataError
from depthcore.synth.bench_formats import write_tum_sequence

H, W, N = 12, 20, 6


def test_associate_is_greedy_by_time_difference_and_uses_each_frame_once():
    rgb = [0.000, 0.030, 0.100]
    depth = [0.012, 0.025, 0.500]
    # candidates below 0.02 s: (1,1) 0.005, (0,0) 0.012, (1,0) 0.018 -> (1,1) then (0,0)
    assert associate(rgb, depth) == [(0, 0), (1, 1)]
    # the closer rgb frame wins the only depth frame; the other stays unpaired
    assert associate([0.0, 0.015], [0.01]) == [(1, 0)]
    assert associate([0.0], [0.02]) == []  # the limit is strict
    assert associate([], [0.0]) == []


def _frames(rng: np.random.Generator) -> tuple[list, list, list[np.ndarray]]:
    """N frames whose rgb colour and depth both encode the frame number, jittered stamps,
    plus an rgb frame with no depth and a depth frame with no rgb."""
    rgb_frames, depth_frames, depths = [], [], []
    for k in range(N):
        t = 1305031452.0 + k / 30.0
        rgb_HW3 = np.full((H, W, 3), 10 * k, np.uint8)
        depth_HW = rng.uniform(0.3, 12.0, (H, W)).astype(np.float32)
        depth_HW[0, k] = 0.0  # sensor hole
        depth_HW[1, 0] = 1.0 + k  # the frame's code
        rgb_frames.append((t + rng.uniform(-0.004, 0.004), rgb_HW3))
        depth_frames.append((t + rng.uniform(-0.008, 0.008), depth_HW))
        depths.append(depth_HW)
    rgb_frames.append((1305031452.0 + N / 30.0, np.full((H, W, 3), 255, np.uint8)))
    depth_frames.insert(0, (1305031452.0 - 1 / 30.0, np.ones((H, W), np.float32)))
    return rgb_frames, depth_frames, depths


@pytest.fixture()
def tum_seq(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    rgb_frames, depth_frames, depths = _frames(np.random.default_rng(5))
    seq = tmp_path / "rgbd_dataset_freiburg1_desk"
    write_tum_sequence(seq, rgb_frames, depth_frames)
    return seq, depths


def test_files_are_tum_lists_and_16bit_pngs(tum_seq):
    seq, _ = tum_seq
    assert (seq / "rgb.txt").read_text().startswith("# color images\n")
    stamp, name = read_file_list(seq / "depth.txt")[1]
    assert name == f"depth/{stamp:.6f}.png"
    with Image.open(seq / name) as im:
        assert im.mode in ("I;16", "I") and np.asarray(im).max() > 255


def test_round_trip_pairs_the_right_frames(tum_seq):
    seq, depths = tum_seq
    for root in (seq, seq.parent):  # a sequence folder or a folder of sequences
        reader = TUMReader(root)
        assert len(reader) == N
        for k, sample in enumerate(reader):
            assert sample.rgb_HW3.shape == (H, W, 3) and sample.rgb_HW3.dtype == np.uint8
            assert np.all(sample.rgb_HW3 == 10 * k)
            assert sample.depth_HW[1, 0] == pytest.approx(1.0 + k, abs=1e-4)
            expected_valid = (depths[k] > 0.01) & (depths[k] <= 10.0)
            np.testing.assert_array_equal(sample.valid_HW, expected_valid)
            np.testing.assert_allclose(
                sample.depth_HW[expected_valid], depths[k][expected_valid], atol=0.5 / 5000
            )
    assert reader[0].name.startswith("rgbd_dataset_freiburg1_desk/1305031452.")


def test_missing_depth_png_names_it(tum_seq):
    seq, _ = tum_seq
    _, name = read_file_list(seq / "depth.txt")[3]
    (seq / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: file not found"):
        TUMReader(seq)[2]


def test_truncated_png_names_it(tum_seq):
    seq, _ = tum_seq
    _, name = read_file_list(seq / "depth.txt")[1]  # random content: no tiny zlib stream
    path = seq / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=name):
        TUMReader(seq)[0]


def test_wrong_depth_format_or_size_named(tum_seq):
    seq, _ = tum_seq
    _, name = read_file_list(seq / "depth.txt")[1]
    Image.fromarray(np.zeros((H, W), np.uint8)).save(seq / name, format="PNG")
    with pytest.raises(DataError, match=rf"{name}: depth PNG must be 16-bit"):
        TUMReader(seq)[0]
    Image.fromarray(np.zeros((H + 1, W), np.uint16)).save(seq / name, format="PNG")
    with pytest.raises(DataError, match=rf"{name}: depth size"):
        TUMReader(seq)[0]


def test_empty_list_or_no_pairs(tum_seq):
    seq, _ = tum_seq
    (seq / "rgb.txt").write_text("# color images\n")
    with pytest.raises(DataError, match=r"rgb\.txt: lists no frames"):
        TUMReader(seq)
    (seq / "rgb.txt").write_text("1.0 rgb/x.png\n")
    with pytest.raises(DataError, match="no rgb.txt/depth.txt timestamps within 0.02 s"):
        TUMReader(seq)
    (seq / "rgb.txt").write_text("not-a-time\n")
    with pytest.raises(DataError, match=r"rgb\.txt:1: expected 'timestamp filename'"):
        TUMReader(seq)
