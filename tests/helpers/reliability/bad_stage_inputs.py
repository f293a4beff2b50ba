"""Bad params sections and damaged raw data or sources, through the stages that read them
(cases for :mod:`tests.helpers.reliability.bad_inputs`)."""

from __future__ import annotations

import functools
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import yaml

from depthcore.synth.hypersim import generate_hypersim
from stages.download import main as download_main
from stages.preprocess import main as preprocess_main
from stages.train import main as train_main
from tests.helpers.reliability.crash_runs import SOURCE, download_sections, run_stage
from tests.helpers.reliability.entrypoints import Case

SEED = 1101


def params_cases(work: Path) -> list[Case]:
    """Bad params sections, each through the stage that reads it."""
    mains = {"train": train_main, "preprocess": preprocess_main, "download": download_main}
    bad = [
        ("train", "steps: -5", "train.steps"),
        ("train", "lr: 0", "train.lr"),
        ("train", "lr: .nan", "train.lr"),
        ("train", "betas: [0.9, 1.5]", "train.betas"),
        ("train", "model: huge", "train.model"),
        ("train", "lerning_rate: 0.1", "train.lerning_rate"),
        ("train", "steps: ten", "train.steps"),
        ("train", "val_frames: -1", "train.val_frames"),
        ("preprocess", "filters: {max_invalid_frac: 1.5}", "preprocess.filters.max_invalid_frac"),
        ("preprocess", "percentiles: [-1, 98]", "preprocess.percentiles"),
        ("preprocess", "resolution: [0, 64]", "preprocess.resolution"),
        ("download", "workers: 0", "download.workers"),
        ("download", "timeout_s: -1", "download.timeout_s"),
    ]
    cases = []
    for i, (section, body, key) in enumerate(bad):
        params = work / f"params{i}.yaml"
        params.write_text(f"{section}:\n  {body}\n")
        extra = ["--objective", "depthart"] if section == "train" else []
        run = functools.partial(mains[section], ["--params", str(params), *extra])
        cases.append(Case("params", f"{section}: {body}", run, key))
    garbage = work / "garbage.yaml"
    garbage.write_bytes(random.Random(SEED).randbytes(400))
    cases.append(
        Case(
            "params",
            "params file of random bytes",
            lambda: train_main(["--params", str(garbage), "--objective", "var_tf"]),
            "garbage.yaml",
        )
    )
    other = work / "other.yaml"
    other.write_text("synth: {}\n")
    cases.append(
        Case(
            "params",
            "params without the stage's section",
            lambda: train_main(["--params", str(other), "--objective", "var_tf"]),
            "section 'train'",
        )
    )
    return cases


def data_cases(work: Path) -> list[Case]:
    """Damaged raw data and sources, through the download and preprocess stages."""
    source = work / "source"
    generate_hypersim(source, SOURCE)
    base = work / "base"
    base.mkdir()
    (base / "params.yaml").write_text(yaml.safe_dump(download_sections(source)))
    run_stage(["stages.download", "--params", "params.yaml"], base)
    raw = base / "data/raw"
    depth = sorted(raw.rglob("*.depth_meters.hdf5"))
    cases = []

    def preprocess_case(
        label: str, damage: Callable[[Path], str], names: str | None = None, **filters: float
    ) -> Case:
        folder = work / f"raw{len(cases)}"
        shutil.copytree(raw, folder)
        bad_name = damage(folder)
        params = work / f"pp{len(cases)}.yaml"
        section = {
            "in_dir": str(folder),
            "out_dir": str(folder) + "_out",
            "resolution": [16, 16],
            "workers": 1,
        }
        if filters:
            section["filters"] = filters
        params.write_text(yaml.safe_dump({"preprocess": section}))
        out = Path(section["out_dir"])
        expect_ok = bool(filters)
        after = (
            (lambda: bad_name in (out / "dropped.csv").read_text())
            if expect_ok
            else (lambda: not out.exists())
        )
        return Case(
            "raw data",
            label,
            lambda: preprocess_main(["--params", str(params)]),
            names or bad_name,
            after,
            expect_ok,
        )

    def corrupt(folder: Path) -> str:
        target = folder / depth[0].relative_to(raw)
        target.write_bytes(target.read_bytes()[:200])
        return target.name

    def all_nan(folder: Path) -> str:
        target = folder / depth[1].relative_to(raw)
        with h5py.File(target, "r+") as f:
            f["dataset"][...] = np.nan
        return "no valid depth pixel"  # the reason dropped.csv must give

    def bad_csv(folder: Path) -> str:
        (folder / "metadata_images_split_scene_v1.csv").write_bytes(
            b'scene_name,frame_id\n\x00\xff,"x\n'
        )
        return "metadata_images_split_scene_v1.csv"

    cases.append(preprocess_case("truncated depth HDF5", corrupt))
    cases.append(
        preprocess_case(
            "all-NaN depth frame, lenient filter",
            all_nan,
            max_invalid_frac=1.0,
            min_depth_range=0.0,
            min_rgb_range=0.0,
        )
    )
    cases.append(preprocess_case("split CSV of garbage", bad_csv))

    broken = work / "broken_source"
    shutil.copytree(source, broken)
    zip_path = sorted(broken.glob("ai_*.zip"))[0]
    zip_path.write_bytes(zip_path.read_bytes()[:-40])
    params = work / "dl.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "download": {
                    "source": f"file://{broken}",
                    "out_dir": str(work / "dl_out"),
                    "scenes": [zip_path.stem],
                }
            }
        )
    )
    cases.append(
        Case(
            "source",
            "truncated scene zip",
            lambda: download_main(["--params", str(params)]),
            zip_path.name,
        )
    )
    missing = work / "dl_missing.yaml"
    missing.write_text(
        yaml.safe_dump(
            {"download": {"source": f"file://{work / 'nowhere'}", "out_dir": str(work / "dl_out2")}}
        )
    )
    cases.append(
        Case(
            "source",
            "source folder missing",
            lambda: download_main(["--params", str(missing)]),
            "nowhere",
        )
    )
    return cases
