"""The common entry point of the pipeline stages (``python -m stages.<name>``).

A stage parses ``--params`` (default ``params.yaml``), runs, and exits non-zero
on any failure, printed as one clear line by the shared boundary
:func:`depthcore.errors.run_guarded` (the traceback too with ``--debug`` or
``DEPTHCORE_DEBUG=1``). Nothing is swallowed.

A stage never deletes or overwrites what it reads: :func:`load_section` (use it
instead of :func:`depthcore.config.load_section`) refuses a params section whose
output key (``out_dir``, ``out``, ``report_dir``) equals or lies inside one of the
section's existing input paths, and protects those inputs for the whole run, so
:func:`depthcore.io.atomic_path` refuses any replace that would touch them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from depthcore import config, io
from depthcore.errors import DEBUG_ENV, run_guarded

T = TypeVar("T")
# Keys of a params section that name what the stage writes; every other existing path
# the section names is an input.
OUTPUT_KEYS = frozenset({"out_dir", "out", "report_dir"})
# Folders a stage both reads and writes in (the scales stage reads
# <models_dir>/<objective>/model.safetensors and writes beside it): neither a protected
# input nor an output as a whole; the stage names the files it reads (``reads=``).
IN_PLACE_KEYS = frozenset({"scales.models_dir"})


def stage_args(
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the arguments every stage takes, plus the ``extra`` ones a stage adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file (default: params.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.debug:  # read by run_stage's boundary, and inherited by worker processes
        os.environ[DEBUG_ENV] = "1"
    return args


def run_stage(name: str, body: Callable[[], object], debug: bool = False) -> None:
    """Run ``body`` as stage ``name``; on any failure exit 1 after one ``error:`` line."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", force=True)

    def call() -> None:
        with io.protected_inputs():
            body()

    status = run_guarded(f"stage {name} failed", call, debug)
    if status and io.unclosed_handles() and _is_main_process_stage():
        # An HDF5 file whose write failed, or a pool whose workers were killed, cannot be
        # finalised safely (h5py crashes, the pool's threads hang the exit): the error line
        # is out and the temporaries were removed on the way up, so exit without finalisers.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    if status:
        raise SystemExit(status)


def _is_main_process_stage() -> bool:
    """Whether this process is ``python -m stages.<name>`` (not a test calling ``main``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.startswith("stages.")


def _paths(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf) of every str/Path leaf of a config (dataclasses, dicts, lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _paths(getattr(value, f.name), f"{key}.{f.name}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _paths(v, f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _paths(v, f"{key}[{i}]")
    elif isinstance(value, str | Path):
        yield key, value


def split_paths(section: str, cfg: object) -> tuple[dict[str, Path], dict[str, Path]]:
    """The (outputs, inputs) a params section names, by key: outputs are the
    :data:`OUTPUT_KEYS`, inputs every other value that is an existing path
    (``file://`` sources included; other URIs are not paths)."""
    outputs: dict[str, Path] = {}
    inputs: dict[str, Path] = {}
    for key, value in _paths(cfg, section):
        text = str(value)
        if key in IN_PLACE_KEYS:
            continue
        if key.rsplit(".", 1)[-1] in OUTPUT_KEYS:
            if text:
                outputs[key] = Path(text)
            continue
        text = text.removeprefix("file://")
        if text and "://" not in text and Path(text).exists():
            inputs[key] = Path(text)
    return outputs, inputs


def load_section(
    section: str,
    cls: type[T],
    path: str | Path = config.DEFAULT_PARAMS,
    *,
    reads: Mapping[str, object] | None = None,
    writes: Mapping[str, object] | None = None,
) -> T:
    """:func:`depthcore.config.load_section`, plus the output-safety check of a stage.

    ``reads``/``writes`` add the stage's command-line paths (``--model``, ``--out``).
    Outputs equal to or inside an input are refused here, before any work; the inputs
    stay protected until the stage ends (:func:`depthcore.io.protect`), so an output
    folder replace that would contain one is refused too.
    """
    cfg = config.load_section(section, cls, path)
    outputs, inputs = split_paths(section, cfg)
    outputs |= {k: Path(str(v)) for k, v in (writes or {}).items() if v}
    inputs |= {k: Path(str(v)) for k, v in (reads or {}).items() if v and Path(str(v)).exists()}
    io.refuse_overlaps(outputs, inputs, containing=False)
    for name, inp in inputs.items():
        io.protect(name, inp)
    return cfg
