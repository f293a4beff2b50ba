"""The evaluate stage end to end on benchmark files in their real on-disk format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from depthcore.evaluation.ranking import rank_table
from depthcore.synth.bench_formats import ibims_calib, write_ibims_frame, write_ibims_list
from stages.evaluate import main
from tests.helpers.fresh import fresh_python


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """The stage runs in-process here and fixes torch's threads and deterministic mode."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


H, W = 30, 40
K_33 = np.array([[36.0, 0.0, 19.5], [0.0, 36.0, 14.5], [0.0, 0.0, 1.0]])
CAMERA_HEIGHT, WALL_Z = 0.3, 4.0  # the floor fills the bottom 40% of the image


def room_fields(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A wall at 4 m above a floor 0.3 m below the camera, as iBims-1 stores it."""
    v_H = np.arange(H, dtype=np.float64)
    with np.errstate(divide="ignore"):
        floor_z_H = np.where(v_H > K_33[1, 2], CAMERA_HEIGHT * K_33[1, 1] / (v_H - K_33[1, 2]), 1e9)
    is_floor_H = floor_z_H < WALL_Z
    depth_HW = np.repeat(np.where(is_floor_H, floor_z_H, WALL_Z)[:, None], W, axis=1)
    edges = np.zeros((H, W), np.uint8)
    edges[np.argmax(is_floor_H), :] = 1
    empty = np.zeros((H, W), np.uint8)
    return {
        "rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "depth": depth_HW.astype(np.float32),
        "edges": edges,
        "calib": ibims_calib(K_33),
        "mask_invalid": np.ones((H, W), np.uint8),
        "mask_transp": np.ones((H, W), np.uint8),
        # normals in iBims' (x right, y forward, z up) frame
        "mask_wall": (~is_floor_H[:, None]).repeat(W, 1).astype(np.uint8),
        "mask_wall_paras": np.array([[0, 0, 0, 0, 0.0, 1.0, 0.0]]),
        "mask_floor": is_floor_H[:, None].repeat(W, 1).astype(np.uint8),
        "mask_floor_paras": np.array([[0, 0, 0, 0, 0.0, 0.0, 1.0]]),
        "mask_table": empty,
        "mask_table_paras": np.zeros((0, 7)),
    }


@pytest.fixture
def params(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    root = tmp_path / "ibims"
    names = ["room_01", "room_02"]
    for name in names:
        write_ibims_frame(root, name, room_fields(rng))
    write_ibims_list(root, names)
    section = {
        "benchmarks": {"ibims": {"root": str(root), "max_images": 0}},
        "alignments": ["lsq", "median"],
        "batch_size": 2,
        "num_panels": 1,
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"evaluate": section}))
    return path


def run(params: Path, model: str, out: Path) -> dict:
    main(["--params", str(params), "--model", model, "--out", str(out)])
    return json.loads((out / "metrics.json").read_text())


def test_stage_scores_reference_predictors_on_ibims_files(params: Path, tmp_path: Path) -> None:
    results = {
        name: run(params, f"reference:{name}", tmp_path / name)
        for name in ("constant_plane", "vertical_gradient")
    }
    for name, metrics in results.items():
        assert (tmp_path / name / "per_image.csv").is_file()
        record = json.loads((tmp_path / name / "evaluate_config.json").read_text())
        assert record["model"] == f"reference:{name}" and record["evaluate"]["batch_size"] == 2
        assert [p.name for p in (tmp_path / name / "panels").glob("[!.]*")] == ["ibims_000.png"]
        lsq = metrics["ibims"]["lsq"]
        assert lsq["num_images"] == 2 and lsq["num_planes"] == 4
        for metric in ("abs_rel", "rmse", "delta1", "pe_fla", "pe_ori", "dbe_acc", "dbe_com"):
            assert math.isfinite(lsq[metric]), (name, metric)
    # the floor-below-wall layout is exactly VerticalGradient's prior
    ranks = rank_table(
        {name: {"ibims": m["ibims"]["lsq"]} for name, m in results.items()},
        ["abs_rel", "delta1", "rmse"],
    )
    assert ranks == {"constant_plane": 2.0, "vertical_gradient": 1.0}
    # a constant prediction aligned is one fronto-parallel plane: the wall is flat and
    # parallel (pe 0), the floor is seen at 90 degrees
    const = results["constant_plane"]["ibims"]["lsq"]
    assert const["pe_fla"] == pytest.approx(0.0, abs=1e-6)
    assert const["pe_ori"] == pytest.approx(45.0, abs=1e-6)


def test_stage_fails_with_one_clear_line(params: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--params", str(params), "--model", "reference:flat", "--out", str(tmp_path / "o")])
    assert info.value.code == 1
    assert "unknown reference predictor 'flat'" in capsys.readouterr().err
    params.write_text(params.read_text().replace(str(tmp_path / "ibims"), str(tmp_path / "no")))
    with pytest.raises(SystemExit):
        run(params, "reference:constant_plane", tmp_path / "o")
    assert str(tmp_path / "no") in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_stage_on_all_four_generated_benchmarks(tmp_path: Path) -> None:
    from depthcore.synth.benchmarks import BENCHMARKS, generate_benchmark

    section: dict = {"benchmarks": {}, "batch_size": 2, "num_panels": 1}
    for i, name in enumerate(BENCHMARKS):
        root = generate_benchmark(name, tmp_path / name, 2, 10 + i, height=48, width=64)
        section["benchmarks"][name] = {"root": str(root), "max_images": 2}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": section}))
    metrics = run(params, "reference:vertical_gradient", tmp_path / "out")
    assert sorted(metrics) == sorted(BENCHMARKS)
    for name in BENCHMARKS:
        for alignment in ("lsq", "median"):
            summary = metrics[name][alignment]
            assert summary["num_images"] == 2
            assert 0.0 < summary["abs_rel"] < 5.0 and 0.0 <= summary["delta1"] <= 1.0
    assert {"pe_fla", "pe_ori", "dbe_acc", "dbe_com"} <= set(metrics["ibims"]["lsq"])
    assert len(list((tmp_path / "out" / "panels").glob("[!.]*"))) == len(BENCHMARKS)


def _tiny_checkpoint(path: Path, space: str) -> Path:
    """A random-weight tiny DepthART checkpoint predicting in ``space``."""
    from depthcore.models import create_model, resolve_config
    from depthcore.models.checkpoint import save_model

    torch.manual_seed(0)
    vae, var = create_model("tiny")
    save_model(path, vae, var, resolve_config("tiny"), meta={"space": space})
    return path


@pytest.mark.parametrize("space", ["sqrt_disparity", "scale_depth"])
def test_stage_with_a_checkpoint(tmp_path: Path, space: str) -> None:
    """A tiny checkpoint goes through DepthPredictor; median only where it is defined."""
    from depthcore.synth.benchmarks import generate_benchmark

    checkpoint = _tiny_checkpoint(tmp_path / "tiny.safetensors", space)
    root = generate_benchmark("ibims", tmp_path / "ibims", 2, 7, height=48, width=64)
    params = tmp_path / "params.yaml"
    section = {"benchmarks": {"ibims": {"root": str(root)}}, "num_panels": 0}
    params.write_text(yaml.safe_dump({"evaluate": section}))
    metrics = run(params, str(checkpoint), tmp_path / "out")["ibims"]
    record = json.loads((tmp_path / "out" / "evaluate_config.json").read_text())
    expected = ["lsq", "median"] if space == "scale_depth" else ["lsq"]
    assert sorted(metrics) == expected
    for alignment in expected:
        assert metrics[alignment]["num_images"] == 2
        assert math.isfinite(metrics[alignment]["abs_rel"]) and metrics[alignment]["rmse"] > 0
    if space == "sqrt_disparity":
        assert "offset is lost" in record["alignments_not_applicable"]["median"]
    else:
        assert record["alignments_not_applicable"] == {}
    assert record["input"]["fit"] == "stretch"
    assert record["determinism"]["num_threads"] == 1
    assert record["determinism"]["deterministic_algorithms"] is True


def test_evaluation_is_byte_identical_when_repeated(tmp_path: Path) -> None:
    """Same params, same machine: metrics.json and per_image.csv are the same bytes."""
    from depthcore.synth.benchmarks import generate_benchmark

    checkpoint = _tiny_checkpoint(tmp_path / "tiny.safetensors", "sqrt_disparity")
    section = {
        "benchmarks": {
            name: {
                "root": str(generate_benchmark(name, tmp_path / name, 3, 11, height=48, width=64))
            }
            for name in ("ibims", "nyu")
        },
        "num_panels": 0,
        "batch_size": 2,
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": section}))
    run(params, str(checkpoint), tmp_path / "a")
    run(params, str(checkpoint), tmp_path / "b")
    for name in ("metrics.json", "per_image.csv"):
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), name
    assert b"dbe_com" in (tmp_path / "a" / "per_image.csv").read_bytes()


def test_make_deterministic_sets_torch_flags_without_importing_inductor():
    """The evaluate stage's determinism is torch's deterministic-kernels flag (warn only),
    set without torch.use_deterministic_algorithms' import of Inductor (~2 s a stage);
    where Inductor is loaded, its deterministic mode is switched on too."""
    code = (
        "import sys, torch\n"
        "from depthcore.evaluation.run import make_deterministic\n"
        "record = make_deterministic(1, 0)\n"
        "assert record['deterministic_algorithms'] is True, record\n"
        "assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "print('torch._inductor' in sys.modules)\n"
        "import torch._inductor.config as inductor_config\n"
        "torch._C._set_deterministic_algorithms(False)\n"
        "inductor_config.deterministic = False\n"
        "make_deterministic(1, 0)\n"
        "print(torch.are_deterministic_algorithms_enabled(), inductor_config.deterministic)\n"
    )
    assert fresh_python(code) == ["False", "True", "True"]
