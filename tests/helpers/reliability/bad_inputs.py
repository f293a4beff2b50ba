"""A corpus of bad inputs run through the real entry points, each judged on the contract:
a non-zero exit, exactly one ``error:`` line that names the file or key, no traceback,
and no partial output (in a batch: the good items still written).

``python -m tests.helpers.reliability.bad_inputs`` prints one line per case;
``python -m bench.reliability.report`` counts them. Cases run in-process
(``depthcore.cli.main``, ``stages.<name>.main``) with stderr captured.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from depthcore.cli import main as cli_main
from depthcore.models import create_model, resolve_config
from depthcore.models.checkpoint import save_model
from tests.helpers.reliability.bad_stage_inputs import data_cases, params_cases
from tests.helpers.reliability.entrypoints import Case, Outcome, run_case

SEED = 1101


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> None:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch_written(out: Path, bad_stem: str) -> bool:
    """The good image of a batch was written, nothing of the bad one."""
    return (out / "a_good_depth.npy").is_file() and not list(out.glob(f"{bad_stem}*"))


def _predict_cases(work: Path, ckpt: Path) -> list[Case]:
    rng = np.random.default_rng(SEED)
    photo = Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    cases = []

    def predict(inputs: list[Path], out: Path, model: Path | str = ckpt) -> Callable[[], int]:
        argv = ["predict", "-q", "--device", "cpu", *map(str, inputs), "-o", str(out)]
        return lambda: cli_main([*argv, "--model", str(model)])

    images = {
        "decompression bomb (30000x30000 PNG)": ("bomb.png", None),
        "truncated PNG": ("truncated.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "zero-byte JPEG": ("empty.jpg", b""),
        "random bytes named .png": ("noise.png", random.Random(SEED).randbytes(3000)),
        "text file named .jpg": ("notes.jpg", b"just some text\n"),
    }
    for i, (label, (name, data)) in enumerate(images.items()):
        folder = work / f"img{i}"
        folder.mkdir()
        photo.save(folder / "a_good.png")
        bad = folder / name
        if data is None:
            bomb_png(bad)
        else:
            bad.write_bytes(data)
        out = work / f"img{i}_out"
        after = functools.partial(_batch_written, out, bad.stem)
        cases.append(Case("image (batch)", label, predict([folder], out), name, after))

    photo.save(work / "photo.png")
    good = ckpt.read_bytes()
    checkpoints = {
        "zero-byte .safetensors": b"",
        "truncated .safetensors": good[: len(good) // 3],
        "random bytes .safetensors": random.Random(SEED).randbytes(5000),
        "random bytes .pth": random.Random(SEED + 1).randbytes(5000),
    }
    for i, (label, data) in enumerate(checkpoints.items()):
        path = work / f"model{i}{'.pth' if 'pth' in label else '.safetensors'}"
        path.write_bytes(data)
        out = work / f"ck{i}_out"
        run = predict([work / "photo.png"], out, path)
        cases.append(Case("checkpoint", label, run, path.name, lambda o=out: not o.exists()))
    for i, text in enumerate(("flavors: {python_function: [unclosed\n", "flavors: 3\n")):
        model = work / f"mlmodel{i}"
        model.mkdir()
        (model / "MLmodel").write_text(text)
        label = "MLmodel not valid YAML" if i == 0 else "MLmodel without the checkpoint"
        cases.append(
            Case("checkpoint", label, predict([work / "photo.png"], work / "mo", model), "MLmodel")
        )
    return cases


def _tracking_cases(work: Path) -> list[Case]:
    """``models:/`` URIs with no tracking URI and with an unreachable server."""
    home = work / "user"
    home.mkdir()
    Image.new("RGB", (8, 8)).save(home / "a.png")

    def predict_uri(env: dict[str, str | None]) -> Callable[[], int]:
        def run() -> int:
            with _env(env), contextlib.chdir(home):
                return cli_main(
                    ["predict", "-q", "a.png", "-o", "out", "--model", "models:/depthart@champion"]
                )

        return run

    def untouched() -> bool:
        return sorted(p.name for p in home.iterdir()) == ["a.png"]

    unreachable = f"http://127.0.0.1:{_closed_port()}"
    none = {"MLFLOW_TRACKING_URI": None}
    fast = {k: None for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    return [
        Case(
            "tracking",
            "models:/ without a tracking URI (no ./mlflow.db made)",
            predict_uri(none),
            "models:/depthart@champion",
            untouched,
        ),
        Case(
            "tracking",
            "models:/ with an unreachable server",
            predict_uri({"MLFLOW_TRACKING_URI": unreachable, **fast}),
            unreachable,
            untouched,
        ),
    ]


@contextlib.contextmanager
def _env(values: dict[str, str | None]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_corpus(work: Path) -> list[Case]:
    """Every case, its files written under ``work``."""
    torch.manual_seed(0)
    vae, var = create_model("tiny")
    ckpt = work / "tiny.safetensors"
    save_model(ckpt, vae, var, resolve_config("tiny"), meta={"space": "sqrt_disparity"})
    return (
        _predict_cases(work, ckpt) + _tracking_cases(work) + params_cases(work) + data_cases(work)
    )


def run_corpus(work: Path) -> list[Outcome]:
    return [run_case(case) for case in build_corpus(work)]


def main() -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = run_corpus(Path(tmp))
    for o in outcomes:
        verdict = "ok " if o.clean else "BAD"
        line = o.errors[0] if o.errors else "(no error line)"
        print(f"{verdict} [{o.case.kind}] {o.case.name}: exit {o.status}: {line[:140]}")
    print(f"{sum(o.clean for o in outcomes)} of {len(outcomes)} handled cleanly")
    return 0 if all(o.clean for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
