"""``depthart predict`` options on par with Marigold's runner, and ``depthart align``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from depthcore.cli import main
from depthcore.errors import DataError
from depthcore.predict import predictor as predictor_module
from depthcore.predict.inputs import expand_inputs
from depthcore.predict.metric import KnownPoints, align_to_points
from depthcore.spaces import normalised_to_depth
from tests.helpers.checkpoints import random_rgb


def _predict(capsys, *argv: str) -> tuple[int, str]:
    code = main(["predict", "--device", "cpu", *argv])
    return code, capsys.readouterr().err


def _images(folder, names: list[str], size: tuple[int, int] = (12, 16)) -> None:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(random_rgb(*size, seed=i)).save(folder / name)


def test_batch_size_groups_images_and_progress_bar_counts_files(
    tmp_path, tiny_checkpoint, capsys, monkeypatch
) -> None:
    _images(tmp_path / "in", ["a.png", "b.png", "c.png"])
    batches: list[int] = []
    infer = predictor_module.DepthPredictor._infer

    def spy(self, rgb_BSS3, **kw):
        batches.append(rgb_BSS3.shape[0])
        return infer(self, rgb_BSS3, **kw)

    monkeypatch.setattr(predictor_module.DepthPredictor, "_infer", spy)
    out = tmp_path / "out"
    code, err = _predict(
        capsys, str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_checkpoint),
        "--batch-size", "2", "--outputs", "npy",
    )  # fmt: skip
    assert code == 0, err
    assert batches == [2, 1]
    assert sorted(p.name for p in out.iterdir()) == [f"{n}_depth.npy" for n in "abc"]
    assert "3/3" in err  # the progress bar over files, on stderr
    assert "model space sqrt_disparity on cpu (fp32)" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_device_cuda_without_cuda_is_one_clear_line(tmp_path, tiny_checkpoint, capsys) -> None:
    _images(tmp_path, ["a.png"])
    code = main(["predict", "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                 "--model", str(tiny_checkpoint), "--device", "cuda"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "CUDA is not available" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", None), ("bf16", torch.bfloat16)])
def test_precision_reaches_the_model(
    tmp_path, tiny_checkpoint, capsys, monkeypatch, precision, dtype
) -> None:
    _images(tmp_path, ["a.png"])
    seen: list[torch.dtype | None] = []
    encode = predictor_module.encode_image

    def spy(vae, rgb, dtype_=None, *args, **kw):
        seen.append(dtype_)
        return encode(vae, rgb, dtype_, *args, **kw)

    monkeypatch.setattr(predictor_module, "encode_image", spy)
    code, err = _predict(
        capsys, "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
        "--model", str(tiny_checkpoint), "--precision", precision, "--outputs", "npy",
    )  # fmt: skip
    assert code == 0, err
    assert seen == [dtype]
    depth_HW = np.load(tmp_path / "o" / "a_depth.npy")
    assert depth_HW.dtype == np.float32 and np.isfinite(depth_HW).all()


def test_grey_colormap_is_a_grey_ramp_near_white(tmp_path, tiny_checkpoint, capsys) -> None:
    _images(tmp_path, ["a.png"], size=(20, 24))
    code, err = _predict(
        capsys, "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
        "--model", str(tiny_checkpoint), "--colormap", "grey",
    )  # fmt: skip
    assert code == 0, err
    depth_HW = np.load(tmp_path / "o" / "a_depth.npy")
    color_HW3 = np.asarray(Image.open(tmp_path / "o" / "a_depth_color.png")).astype(int)
    assert (color_HW3[..., 0] == color_HW3[..., 1]).all() and (
        color_HW3[..., 1] == color_HW3[..., 2]
    ).all()
    near, far = (
        np.unravel_index(depth_HW.argmin(), depth_HW.shape),
        np.unravel_index(depth_HW.argmax(), depth_HW.shape),
    )
    assert color_HW3[near][0] > color_HW3[far][0]
    code, err = _predict(capsys, "a.png", "-o", str(tmp_path / "x"), "--colormap", "nope")
    assert code == 2 and "unknown --colormap 'nope'" in err  # before any model is loaded
    code, err = _predict(capsys, "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "v"),
                         "--model", str(tiny_checkpoint), "--cmap", "viridis")  # fmt: skip
    assert code == 0 and (tmp_path / "v" / "a_depth_color.png").is_file()


def test_outputs_mirror_folder_and_glob_trees(tmp_path, tiny_checkpoint, capsys) -> None:
    _images(tmp_path / "in", ["a.png", "sub/b.png", "sub/deeper/c.jpg"])
    _images(tmp_path / "other", ["a.png"])
    _images(tmp_path / "third", ["a.png"])
    out = tmp_path / "out"
    code, err = _predict(
        capsys, "-q", "-r", *(str(tmp_path / d) for d in ("in", "other", "third")),
        "-o", str(out), "--model", str(tiny_checkpoint), "--outputs", "npy",
    )  # fmt: skip
    assert code == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    # a.png of other input folders: the extension is added, then a number
    assert written == [
        "a_depth.npy", "a_png_2_depth.npy", "a_png_depth.npy", "sub/b_depth.npy",
        "sub/deeper/c_depth.npy",
    ]  # fmt: skip
    jobs, failures = expand_inputs(
        [f"{tmp_path}/in/**/*.png", str(tmp_path / "in" / "a.png")], True
    )
    assert not failures
    assert [str(j.stem) for j in jobs] == ["a", "sub/b"]  # relative to the glob's folder, once


def test_align_recovers_metric_depth_from_three_points(tmp_path, capsys) -> None:
    rows, cols = np.mgrid[0:30, 0:40]
    metric_HW = 1.0 + 0.1 * rows + 0.05 * cols  # metres
    pred_HW = 0.7 * np.sqrt(1 / metric_HW) - 0.2  # affine in sqrt-disparity: what a model gives
    out_HW = normalised_to_depth(pred_HW, "sqrt_disparity")
    points = KnownPoints(
        np.array([3, 35, 20]), np.array([2, 5, 27]), metric_HW[[2, 5, 27], [3, 35, 20]]
    )
    fit = align_to_points(out_HW, points)
    np.testing.assert_allclose(fit.depth_HW, metric_HW, rtol=1e-4)
    assert fit.rms_error_m < 1e-4

    np.save(tmp_path / "a_depth.npy", out_HW)
    lines = ["x,y,depth"] + [
        f"{x},{y},{d}" for x, y, d in zip(points.x, points.y, points.depth, strict=True)
    ]
    (tmp_path / "pts.csv").write_text("\n".join(lines) + "\n")
    code = main(["align", str(tmp_path / "a_depth.npy"), "--points", str(tmp_path / "pts.csv"),
                 "-o", str(tmp_path / "metric.npy")])  # fmt: skip
    assert code == 0 and "rms error at the points" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(tmp_path / "metric.npy"), metric_HW, rtol=1e-4)

    (tmp_path / "one.csv").write_text("x,y,depth\n3,2,1.2\n")
    code = main(["align", str(tmp_path / "a_depth.npy"), "--points", str(tmp_path / "one.csv"),
                 "-o", str(tmp_path / "m2.npy")])  # fmt: skip
    assert code == 1 and "at least two points" in capsys.readouterr().err
    with pytest.raises(DataError, match=r"points \[\(40, 0\)\] lie outside the 40x30 map"):
        align_to_points(
            out_HW, KnownPoints(np.array([40, 1]), np.array([0, 1]), np.array([1.0, 2.0]))
        )
