"""Loopback network tools for the tests and the bench scripts: THE HTTP range server (with
injectable faults), free ports, and server processes waited on until they answer.

:func:`range_server` serves a folder with single-range ``Range`` support, an
``ETag`` per file version and ``If-Match`` (412 when the file changed), like a CDN or
S3. With a :class:`FaultPlan` it injects faults on the *first* attempt of selected
requests (every ``fault_every``-th distinct ``(file, range)`` in arrival order, kinds
taken round-robin from ``kinds``), so a client with one retry per request always gets
through and the number of faults does not depend on thread timing. The kinds:

``reset``        headers and half the body, then a TCP reset (RST)
``truncate``     headers promising the whole body, half of it, then a clean close
``http500``      ``500 Internal Server Error``
``http503``      ``503 Service Unavailable``
``http429``      ``429 Too Many Requests`` with ``Retry-After: <retry_after_s>``
``stall``        nothing for ``stall_s`` (longer than the client's timeout), then a close
``short_length`` a ``Content-Length`` smaller than the body sent
``long_length``  a ``Content-Length`` larger than the body sent, then a close
``bad_range``    the right bytes under a ``Content-Range`` shifted by one byte

``replace_after`` maps a file name to (n, bytes): when that file's n-th request
arrives, its content is replaced (new ETag and size), the way an object is
re-uploaded mid-download. ``always_fail`` maps a file name to byte spans
whose requests always get a 503 (a member that can never be fetched). Setting
``log.fail_next = n`` answers the next n GETs, whatever they ask, with a 503.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

KINDS = (
    "reset",
    "truncate",
    "http500",
    "http503",
    "http429",
    "stall",
    "short_length",
    "long_length",
    "bad_range",
)


@dataclass
class ServerLog:
    """What a test server did: each clean answer's (file, first byte, stop) and the bytes
    sent; the 5xx still to send (``fail_next``) and sent (``failed``); planned faults by
    kind, replacements, 412 refusals and, for each ``http429``, how long until the same
    request came back."""

    served: list[tuple[str, int, int]] = field(default_factory=list)
    bytes_sent: int = 0
    fail_next: int = 0
    failed: int = 0
    injected: Counter = field(default_factory=Counter)
    replaced: list[str] = field(default_factory=list)
    refused_412: int = 0
    retry_after_waits: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        """Planned faults and replacements (not the ``fail_next`` answers)."""
        return sum(self.injected.values()) + len(self.replaced)

    def take_failure(self) -> bool:
        """Whether this request is one of the ``fail_next`` to answer with a 5xx."""
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.failed += 1
                return True
            return False


@dataclass
class FaultPlan:
    """Which faults to inject (see the module docstring); ``fault_every=0``: none."""

    kinds: tuple[str, ...] = KINDS
    fault_every: int = 2
    retry_after_s: int = 1
    stall_s: float = 1.5
    replace_after: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    always_fail: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[len("bytes=") :].partition("-")
    return int(first), min(size, int(last) + 1) if last else size


def _etag(path: Path) -> str:
    st = path.stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    plan: FaultPlan
    log: ServerLog
    state: dict[str, object]  # seen keys, arrival counter, per-file request counts, 429 times

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return

    def _choose_fault(self, key: tuple[str, str]) -> str | None:
        """The fault for this request: only on a key's first arrival, every n-th key."""
        with self.log.lock:
            seen: dict = self.state["seen"]  # type: ignore[assignment]
            if key in seen:
                sent_429 = self.state["sent_429"]
                if key in sent_429:  # type: ignore[operator]
                    wait = time.monotonic() - sent_429.pop(key)  # type: ignore[union-attr]
                    self.log.retry_after_waits.append(wait)
                return None
            n = len(seen)
            seen[key] = n
            if not self.plan.fault_every or n % self.plan.fault_every:
                return None
            kind = self.plan.kinds[(n // self.plan.fault_every) % len(self.plan.kinds)]
            self.log.injected[kind] += 1
            if kind == "http429":
                self.state["sent_429"][key] = time.monotonic()  # type: ignore[index]
            return kind

    def _maybe_replace(self, name: str, path: Path) -> None:
        with self.log.lock:
            counts: Counter = self.state["counts"]  # type: ignore[assignment]
            counts[name] += 1
            when = self.plan.replace_after.get(name)
            if when is not None and counts[name] == when[0]:
                tmp = path.with_name(path.name + ".new")
                tmp.write_bytes(when[1])
                tmp.replace(path)
                self.log.replaced.append(name)

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST instead of a clean close."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.log.take_failure():
            self.send_error(503, "injected fault")
            return
        name = unquote(self.path.lstrip("/"))
        path = self.root / name
        if not path.is_file() or not path.resolve().is_relative_to(self.root.resolve()):
            self.send_error(404)
            return
        self._maybe_replace(name, path)
        data = path.read_bytes()
        etag = _etag(path)
        size = len(data)
        rng = _parse_range(self.headers.get("Range"), size)
        start, stop = rng or (0, size)
        if any(a < stop and start < b for a, b in self.plan.always_fail.get(name, [])):
            self.send_error(503, "injected permanent fault")
            return
        if_match = self.headers.get("If-Match")
        if if_match and if_match != etag:
            with self.log.lock:
                self.log.refused_412 += 1
            self.send_error(412, "Precondition Failed")
            return
        body = data[start:stop]
        headers = {"ETag": etag, "Content-Length": str(len(body))}
        if rng:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        kind = self._choose_fault((name, self.headers.get("Range", "")))
        status = 206 if rng else 200
        if kind is None:
            self._send(status, headers, body)
            with self.log.lock:
                self.log.served.append((name, start, stop))
                self.log.bytes_sent += len(body)
        elif kind in ("http500", "http503"):
            self.send_error(int(kind[4:]), "injected fault")
        elif kind == "http429":
            self._send(
                429,
                {"Retry-After": str(self.plan.retry_after_s), "Content-Length": "0"},
            )
        elif kind == "stall":
            time.sleep(self.plan.stall_s)
            self.close_connection = True
        elif kind in ("reset", "truncate"):
            self._send(status, headers, body[: len(body) // 2])
            if kind == "reset":
                self._reset()
            self.close_connection = True
        elif kind == "short_length":
            self._send(status, {**headers, "Content-Length": str(max(0, len(body) - 1))}, body)
        elif kind == "long_length":
            self._send(status, {**headers, "Content-Length": str(len(body) + 7)}, body)
            self.close_connection = True
        elif kind == "bad_range":
            shifted = f"bytes {start + 1}-{stop}/{size}"
            self._send(status, {**headers, "Content-Range": shifted}, body)
        else:
            raise AssertionError(f"unknown fault kind {kind}")


@contextlib.contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 (a free port) until the block ends; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def range_server(root: Path, plan: FaultPlan | None = None) -> Iterator[tuple[str, ServerLog]]:
    """Serve ``root`` on 127.0.0.1 (a free port), with ``plan``'s faults (none by default);
    yields (base url, log)."""
    log = ServerLog()
    state = {"seen": {}, "counts": Counter(), "sent_429": {}}
    attrs = {"root": root, "plan": plan or FaultPlan(fault_every=0), "log": log, "state": state}
    with serve(type("RangeHandler", (_Handler,), attrs)) as url:
        yield url, log


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free now (all bound at once, then released)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port() -> int:
    return free_ports(1)[0]


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    """Poll ``url`` until it answers 200; fail naming the URL (and the log) if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def serving(cmd: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run a server process until the block ends (terminated, then killed if it lingers)."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            wait_http(health, 90, proc)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
