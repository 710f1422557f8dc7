"""``python -m botmox_rtdb.testing``: run the RTDB emulator in the foreground until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from botmox_rtdb.testing.server import RtdbEmulator


def main(argv: list[str] | None = None) -> int:
    """Start the emulator, print ``host:port`` on stdout, serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m botmox_rtdb.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--rules", type=Path, help="database.rules.json to load")
    args = parser.parse_args(argv)
    rules = None
    if args.rules is not None:
        rules = json.loads(args.rules.read_text(encoding="utf-8"))
    if args.rules is None:
        from botmox_rtdb.rules import rules_document

        rules = rules_document()
    emulator = RtdbEmulator(rules=rules, host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(emulator.start(), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
