"""Fetch a licensed module onto this VM with the botmox runner client.

    BOTMOX_SERVER=https://botmox.example.com BOTMOX_TOKEN=... \\
        python examples/runner_fetch.py farm-bot win64 ./modules/farm-bot.zip

Registers this VM (its id comes from BOTMOX_VM_UUID or the machine id), takes a licence lease
(heartbeated in the background), resolves the assigned release, downloads it with resume and
verifies size and sha256 before it replaces the destination. Run it again after an interruption
and it continues where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys

from botmox_core.client import RunnerClient
from botmox_core.errors import BotmoxError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module")
    parser.add_argument("platform")
    parser.add_argument("dest")
    parser.add_argument("--channel", default="stable")
    parser.add_argument("--server", default=os.environ.get("BOTMOX_SERVER"))
    parser.add_argument("--user", default=None, help="user the VM belongs to")
    args = parser.parse_args()
    token = os.environ.get("BOTMOX_TOKEN")
    if not args.server or not token:
        parser.error("set BOTMOX_SERVER (or --server) and BOTMOX_TOKEN")

    def progress(done: int, total: int) -> None:
        print(f"\r{done * 100 // max(total, 1):3d}% of {total} bytes", end="", file=sys.stderr)

    try:
        with RunnerClient(args.server, token) as client:
            result = client.fetch(
                args.module, args.platform, args.channel, args.dest,
                user_id=args.user, progress=progress,
            )
    except BotmoxError as error:
        print(f"\nerror: {error.code}: {error.message}", file=sys.stderr)
        return 1
    print(f"\n{result.path}: {args.module} {result.version}, sha256 {result.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
