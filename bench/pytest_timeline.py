"""Where the test suite's wall time goes per pytest-xdist worker: figures to read.

``--durations`` gives each test's time but not when it ran, nor what ran beside it on the
other worker; two heavy modules side by side on 2 cores slow each other down (the
conditioning fixture took 73 s alone and 240 s beside the end-to-end `dvc repro`). As a
pytest plugin this records each test's start and end per worker (or as "main" without
xdist); run as a script it prints each worker's modules in order (start, seconds, module)
and when each worker finished.

    TIMELINE_DIR=/tmp/tl PYTHONPATH=bench python -m pytest -m "not slow" -n 2 \
        --dist loadscope -p pytest_timeline
    python bench/pytest_timeline.py /tmp/tl --min-seconds 8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _record(event: str, nodeid: str) -> None:
    folder = os.environ.get("TIMELINE_DIR")
    if not folder:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(folder) / f"timeline_{worker}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": event, "id": nodeid, "t": time.time()}) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Runs where the test runs (an xdist worker, or the one process), never in the
    xdist controller, which only relays the workers' reports."""
    _record("start", item.nodeid)
    yield
    _record("end", item.nodeid)


def module_spans(path: Path) -> list[tuple[float, float, str]]:
    """(first start, last end, module) per module of one worker's file, in run order."""
    spans: dict[str, list[float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        module = record["id"].split("::")[0]
        span = spans.setdefault(module, [record["t"], record["t"]])
        span[1] = max(span[1], record["t"])
    return [(a, b, m) for m, (a, b) in spans.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--min-seconds", type=float, default=8.0, help="shorter modules hidden")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("timeline_*.jsonl"))
    if not files:
        raise SystemExit(f"{args.folder}: no timeline_*.jsonl (run pytest with the plugin)")
    workers = {f.stem.removeprefix("timeline_"): module_spans(f) for f in files}
    t0 = min(a for spans in workers.values() for a, _, _ in spans)
    for worker, spans in workers.items():
        print(f"{worker}: finished at {max(b for _, b, _ in spans) - t0:.1f} s")
        for a, b, module in spans:
            if b - a >= args.min_seconds:
                print(f"  {a - t0:7.1f} s  {b - a:6.1f} s  {module}")


if __name__ == "__main__":
    main()
