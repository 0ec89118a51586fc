"""A process that uses the embedded Redis until told to leave: ``python -m
tests.embedded_holder DATA_DIR`` prints ``ready`` once it holds its lease, then gives it
up when a line arrives on standard input (or at end of input)."""

from __future__ import annotations

import sys
from pathlib import Path

from recsvc.store.embedded import EmbeddedRedis


def main() -> None:
    server = EmbeddedRedis(Path(sys.argv[1]))
    server.start()
    print("launched" if server.launched else "joined", flush=True)
    sys.stdin.readline()
    server.stop()
    print("left", flush=True)


if __name__ == "__main__":
    main()
