"""The bad-input classes of issue 11 against ``depthart predict``: each gives one ``error:``
line naming the file, a non-zero exit, no traceback, no partial output; in a batch the
good images are still written."""

from __future__ import annotations

import socket
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from depthcore.cli import main
from tests.helpers.checkpoints import random_rgb


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["predict", "-q", "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> None:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_decompression_bomb_is_one_line_and_batch_goes_on(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(random_rgb(20, 30)).save(src / "a_good.png")
    bomb_png(src / "b_bomb.png")
    Image.fromarray(random_rgb(16, 16, seed=1)).save(src / "c_good.png")
    out = tmp_path / "out"
    code, errors = _run(capsys, str(src), "-o", str(out), "--model", str(tiny_checkpoint))
    assert code == 1
    assert errors == [errors[0]] and "b_bomb.png: image too large" in errors[0]
    assert (out / "a_good_depth.npy").is_file() and (out / "c_good_depth.npy").is_file()
    assert not list(out.glob("b_bomb*"))


def test_zero_byte_safetensors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "a.png")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    out = tmp_path / "out"
    code, errors = _run(
        capsys,
        str(tmp_path / "a.png"),
        "-o",
        str(out),
        "--model",
        str(tmp_path / "empty.safetensors"),
    )
    assert (
        code == 1
        and len(errors) == 1
        and "empty.safetensors: checkpoint file is empty" in errors[0]
    )
    assert not out.exists()


def test_mlmodel_not_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "a.png")
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {python_function: [unclosed\n")
    code, errors = _run(
        capsys, str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(model)
    )
    assert code == 1 and len(errors) == 1
    assert "MLmodel: not valid YAML" in errors[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracking_server_fails_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    ):
        monkeypatch.delenv(key, raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "a.png")
    start = time.monotonic()
    code, errors = _run(capsys, "a.png", "-o", "out", "--model", "models:/depthart@champion")
    waited = time.monotonic() - start
    assert code == 1 and len(errors) == 1
    assert "models:/depthart@champion: cannot resolve model" in errors[0] and uri in errors[0]
    assert waited < 60  # MLflow's defaults retry for about 250 s
    assert not (tmp_path / "mlflow.db").exists()


def test_models_uri_without_tracking_uri_creates_no_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "a.png")
    code, errors = _run(capsys, "a.png", "-o", "out", "--model", "models:/depthart@champion")
    assert code == 1 and len(errors) == 1 and "no MLflow tracking URI set" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no mlflow.db, no out/
