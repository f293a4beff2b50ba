"""The DepthART model as an MLflow pyfunc, and resolution of MLflow model URIs to checkpoints.

The logged model holds the safetensors checkpoint as the artifact
``checkpoint``; ``load_context`` builds a :class:`depthcore.predict.predictor.DepthPredictor`
from it. It is logged as "model from code" (a three-line script that calls
:func:`make_python_model`), so nothing is pickled and mlflow is imported only
inside functions here. The serving environment must have ``depthcore``
installed (``pip install -e .``); ``--env-manager local`` uses the current one.

Request (``POST /invocations``, ``Content-Type: application/json``), any of::

    {"dataframe_split": {"columns": ["image"], "data": [["<base64 PNG or JPEG>"], ...]}}
    {"dataframe_records": [{"image": "<base64 PNG or JPEG>"}, ...]}
    {"dataframe_records": [{"image": [[[r, g, b], ...], ...]}]}      # nested HxWx3 uint8
    {"inputs": [[[[r, g, b], ...], ...]]}                             # tensor (N, H, W, 3) uint8
    {"inputs": {"image": ["<base64>", ...]}}

Signature (shown on the model page): one input column ``image`` of MLflow type ``Any``,
a base64 PNG/JPEG string or an HxWx3 uint8 nested list per row (a ``string`` column
would misdescribe the array forms; the request forms above are all checked by
``tests/tracking``), and one output tensor ``depth`` (N, H, W) float32. The input example
is an 8x8 base64 PNG. In Python, ``model.predict`` takes a DataFrame with an ``image``
column or ``{"image": [rgb_HW3, ...]}``; MLflow's schema check refuses a bare
(N, H, W, 3) array (over HTTP, ``{"inputs": [...]}`` still works).

Limits per request (checked before any image is decoded in full, answered 400 with
the limit and how to raise it): at most :data:`MAX_IMAGES` images
(``DEPTHART_SERVE_MAX_IMAGES``) and :data:`MAX_PIXELS` pixels in all
(``DEPTHART_SERVE_MAX_PIXELS``); array pixels must be finite numbers in [0, 255]
(NaN / Infinity refused). The work of one request stops after
:data:`MAX_SECONDS` (``DEPTHART_SERVE_MAX_SECONDS``, below MLflow's own 60-s
request timeout) with a 504, instead of running on for a client that has gone.

Response: ``{"predictions": [depth_1, depth_2, ...]}`` with one ``depth_i`` per
input image, a list of H rows of W floats at the input image's resolution:
affine-invariant depth, near = small (conversion rule in :mod:`depthcore.predict.predictor`).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from depthcore.errors import CheckpointError, DataError
from depthcore.models.model_dir import CHECKPOINT_ARTIFACT, checkpoint_in_model_dir
from depthcore.predict.images import load_rgb
from depthcore.predict.predictor import URI_SCHEMES, DepthPredictor
from depthcore.run_logger import check_sqlite_store

REGISTERED_MODEL_NAME = "depthart"
_MODEL_CODE = textwrap.dedent(
    """\
    # MLflow "model from code" entry: builds the DepthART pyfunc (depthcore must be installed).
    import mlflow.models

    from depthcore.tracking.pyfunc import make_python_model

    mlflow.models.set_model(make_python_model())
    """
)
_PIP_PACKAGES = ("torch", "numpy", "pillow", "pandas", "safetensors", "pyyaml", "tqdm", "mlflow")


#: Per-request limits of the served model (module docstring); environment overrides.
MAX_IMAGES = 16
MAX_PIXELS = 16_000_000
MAX_SECONDS = 50.0
SERVE_CHUNK = 4  # images per forward pass between two checks of the time budget


def serving_limit(name: str, default: float) -> float:
    """``DEPTHART_SERVE_<name>`` from the environment (a positive number), else ``default``."""
    var = f"DEPTHART_SERVE_{name}"
    text = os.environ.get(var, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{var}={text!r}: expected a positive number") from None
    if not (np.isfinite(value) and value > 0):
        raise DataError(f"{var}={text!r}: expected a positive number")
    return value


def _cells(model_input: Any) -> list[Any]:
    """The per-image cells of any accepted pyfunc input (module docstring)."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if "image" not in model_input.columns:
            raise DataError(
                f"input DataFrame needs an 'image' column, got {list(model_input.columns)}"
            )
        cells = list(model_input["image"])
    elif isinstance(model_input, dict):
        if "image" not in model_input:
            raise DataError(f"input mapping needs an 'image' key, got {sorted(model_input)}")
        cells = list(model_input["image"])
    elif isinstance(model_input, np.ndarray) and model_input.dtype.kind in "uif":
        cells = [model_input] if model_input.ndim == 3 else list(model_input)
    elif isinstance(model_input, list | tuple) or getattr(model_input, "ndim", 0) >= 1:
        cells = list(model_input)
    else:
        raise DataError(f"expected a list of images, got {str(model_input)[:40]!r}")
    return cells


def decode_images(
    model_input: Any, max_images: int | None = None, max_pixels: int | None = None
) -> list[np.ndarray]:
    """Turn any accepted pyfunc input (module docstring) into a list of ``rgb_HW3`` uint8 arrays.

    ``max_images`` / ``max_pixels`` (all images together) are checked before any image
    is decoded in full (a PNG's size comes from its header).
    """
    cells = _cells(model_input)
    if max_images is not None and len(cells) > max_images:
        raise DataError(
            f"{len(cells)} images in one request; the limit is {max_images} "
            "(DEPTHART_SERVE_MAX_IMAGES): send smaller batches"
        )
    encoded: list[bytes | np.ndarray] = []
    pixels = 0
    for i, cell in enumerate(cells):
        if isinstance(cell, str | bytes):
            try:
                raw = base64.b64decode(cell, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise DataError(f"image {i}: not valid base64: {exc}") from exc
            width, height = _encoded_size(raw, i)
            encoded.append(raw)
        else:
            array = _as_rgb_array(cell, i)
            height, width = array.shape[:2]
            encoded.append(array)
        pixels += width * height
        if max_pixels is not None and pixels > max_pixels:
            raise DataError(
                f"images 0..{i} hold {pixels} pixels; the limit per request is {max_pixels} "
                "(DEPTHART_SERVE_MAX_PIXELS): send fewer or smaller images"
            )
    return [
        load_rgb(item, name=f"image {i}")[0] if isinstance(item, bytes) else item
        for i, item in enumerate(encoded)
    ]


def _encoded_size(raw: bytes, i: int) -> tuple[int, int]:
    """(width, height) from an encoded image's header, without decoding its pixels."""
    from io import BytesIO

    try:
        with Image.open(BytesIO(raw)) as img:
            return img.size
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {i}: image too large to decode safely: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise DataError(f"image {i}: cannot read image: {exc}") from exc


def decode_images_for_serving(model_input: Any) -> list[np.ndarray]:
    """:func:`decode_images`, its :class:`DataError` turned into MLflow's "invalid parameter":
    the scoring server then answers 400 with our message (any other exception would be a
    400 with a generic text, the reason only in a stack trace)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    try:
        return decode_images(
            model_input,
            max_images=int(serving_limit("MAX_IMAGES", MAX_IMAGES)),
            max_pixels=int(serving_limit("MAX_PIXELS", MAX_PIXELS)),
        )
    except DataError as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc


def _as_rgb_array(cell: Any, i: int) -> np.ndarray:
    try:
        array = np.asarray(cell)
        if array.dtype == object:  # a column of nested lists comes through as object arrays
            array = np.asarray(array.tolist())
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # ragged, too deep
        raise DataError(f"image {i}: not an HxWx3 array of numbers ({exc})") from exc
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise DataError(f"image {i}: expected an HxWx3 array, got shape {array.shape}")
    if array.shape[0] * array.shape[1] > Image.MAX_IMAGE_PIXELS:  # the limit load_rgb keeps
        raise DataError(f"image {i}: {array.shape[1]}x{array.shape[0]} pixels is too large")
    if array.dtype.kind not in "uif":
        raise DataError(f"image {i}: expected numbers in [0, 255], got {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"image {i}: pixel values must be finite (NaN or Infinity sent)")
    if array.min() < 0 or array.max() > 255:
        raise DataError(f"image {i}: expected uint8 values in [0, 255]")
    return np.rint(array).astype(np.uint8)


def predict_in_time(predictor: DepthPredictor, images: list[np.ndarray]) -> list[Any]:
    """Depth for ``images``, a few at a time, stopping with a 504 once the request's time
    budget (``DEPTHART_SERVE_MAX_SECONDS``) is spent: MLflow's server gives up on the
    client after 60 s but would keep computing an abandoned request."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import DEADLINE_EXCEEDED

    budget = serving_limit("MAX_SECONDS", MAX_SECONDS)
    start = time.monotonic()
    results: list[Any] = []
    for first in range(0, len(images), SERVE_CHUNK):
        if first and time.monotonic() - start > budget:
            raise MlflowException(
                f"request stopped after {budget:g} s with {first} of {len(images)} images "
                "done (DEPTHART_SERVE_MAX_SECONDS): send fewer or smaller images",
                error_code=DEADLINE_EXCEEDED,
            )
        results += predictor.predict_images(images[first : first + SERVE_CHUNK])
    return results


def make_python_model() -> Any:
    """Build the pyfunc ``PythonModel`` instance (a class defined here so mlflow loads lazily)."""
    import mlflow.pyfunc

    class DepthArtPyfunc(mlflow.pyfunc.PythonModel):
        """Images (base64 PNG/JPEG or HxWx3 arrays) in, one HxW depth list per image out."""

        def load_context(self, context: Any) -> None:
            self.predictor = DepthPredictor.from_pretrained(
                context.artifacts[CHECKPOINT_ARTIFACT], device="auto"
            )

        # No type hints here on purpose: MLflow would turn them into an enforced input
        # schema, refusing the several request forms this model accepts.
        def predict(self, context, model_input, params=None):
            images = decode_images_for_serving(model_input)
            return [r.depth.tolist() for r in predict_in_time(self.predictor, images)]

    return DepthArtPyfunc()


def default_pip_requirements() -> list[str]:
    """Pinned requirements of the serving environment (plus depthcore itself, installed locally)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in _PIP_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def signature() -> Any:
    """The pyfunc's ModelSignature (module docstring): ``image`` (Any) in, ``depth`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "image")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1), "depth")]),
    )


def example_input() -> dict[str, list[str]]:
    """One 8x8 grey PNG, base64: the smallest request the model page can show and replay."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, format="PNG")
    return {"image": [base64.b64encode(buf.getvalue()).decode()]}


def log_pyfunc_model(
    checkpoint_path: str | Path,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    input_example: Any = None,
) -> Any:
    """Log ``checkpoint_path`` as a pyfunc model in the active (or a new) run; returns ModelInfo.

    ``name`` is what the run's and the registry's model lists show: pass what the
    model is (e.g. ``depthart-tiny``). The signature is always :func:`signature`.
    """
    import mlflow.pyfunc

    checkpoint_path = Path(checkpoint_path)
    if not checkpoint_path.is_file():
        raise CheckpointError(f"{checkpoint_path}: checkpoint not found, cannot log the model")
    with tempfile.TemporaryDirectory(prefix="depthart-pyfunc-") as tmp:
        code = Path(tmp) / "depthart_model.py"
        code.write_text(_MODEL_CODE)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code),
            artifacts={CHECKPOINT_ARTIFACT: str(checkpoint_path)},
            pip_requirements=pip_requirements or default_pip_requirements(),
            registered_model_name=registered_model_name,
            signature=signature(),
            input_example=input_example,
        )


#: Reading a model must not wait minutes on an unreachable tracking server (MLflow's
#: defaults retry for about four minutes): a few seconds, then a clear error.
#: Set the variables yourself to allow more.
FAIL_FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


def model_tracking_uri(uri: str, tracking_uri: str | None = None) -> str:
    """The tracking URI that resolves model ``uri``: ``tracking_uri``, else
    ``MLFLOW_TRACKING_URI``, else an existing ``./mlflow.db``.

    Never one that would create a registry as a side effect: MLflow's own default is
    ``./mlflow.db``, which it creates empty, and a later run would take it for a real
    registry. So a SQLite file must already exist, else :class:`CheckpointError`.
    """
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        local = Path.cwd() / "mlflow.db"
        if not local.is_file():
            raise CheckpointError(
                f"{uri}: no MLflow tracking URI set and no {local}: set MLFLOW_TRACKING_URI "
                "(sqlite:///path/to/mlflow.db or http://host:port) or pass a checkpoint file"
            )
        tracking_uri = f"sqlite:///{local}"
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :])
        if not db.is_file():
            raise CheckpointError(f"{uri}: tracking URI {tracking_uri}: no such registry file")
        if db.stat().st_size == 0:  # MLflow would create its tables in it
            raise CheckpointError(f"{uri}: tracking URI {tracking_uri}: empty registry file")
        check_sqlite_store(tracking_uri)
    return tracking_uri


def checkpoint_from_uri(uri: str, dst_dir: str | Path, tracking_uri: str | None = None) -> Path:
    """Download the model at an MLflow URI into ``dst_dir``; return its checkpoint path.

    ``tracking_uri`` (also used as the registry URI) is resolved by
    :func:`model_tracking_uri`; passing it avoids touching global state. An HTTP
    tracking server gets the short :data:`FAIL_FAST_HTTP` timeouts unless the
    environment sets its own. Raises :class:`CheckpointError` with the URI and the
    tracking URI in one line when the model does not resolve (unknown name, alias,
    run, unreachable server).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    tracking_uri = model_tracking_uri(uri, tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        for key, value in FAIL_FAST_HTTP.items():
            os.environ.setdefault(key, value)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=str(dst_dir),
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
    except (MlflowException, OSError) as exc:
        reason = str(getattr(exc, "message", exc)).strip().splitlines()[0]
        raise CheckpointError(
            f"{uri}: cannot resolve model (tracking URI {tracking_uri}): {reason}"
        ) from exc
    return checkpoint_in_model_dir(local)


def load_predictor(
    path_or_uri: str | Path, *, tracking_uri: str | None = None, **kwargs: Any
) -> DepthPredictor:
    """A predictor from a local checkpoint/model folder or an MLflow model URI.

    URIs (``models:/depthart@champion``, ``runs:/<id>/model``, ...) are downloaded
    with MLflow (against ``tracking_uri``, default ``MLFLOW_TRACKING_URI``) to a
    temporary folder and loaded from there; ``kwargs`` go to the predictor.
    """
    text = str(path_or_uri)
    if not text.startswith(URI_SCHEMES):
        return DepthPredictor.from_pretrained(text, **kwargs)
    with tempfile.TemporaryDirectory(prefix="depthart-model-") as tmp:
        checkpoint = checkpoint_from_uri(text, tmp, tracking_uri)
        return DepthPredictor.from_pretrained(checkpoint, **kwargs)
