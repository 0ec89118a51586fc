"""The service as its own process, for tests that measure it from outside (its RSS).

``python -m tests.serve_worker PORT`` serves ``create_app(Settings())`` (settings from the
environment, as ``recsvc serve`` reads them) with the default protocol, printing
``serving PID`` once it listens.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from recsvc.api.app import create_app
from recsvc.api.protocol import ServiceConfig
from recsvc.config import Settings


def main() -> None:
    settings = Settings()
    config = ServiceConfig(
        create_app(settings),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="error",
        access_log=False,
        head_limits=settings.head_limits,
    )
    server = uvicorn.Server(config)
    print(f"serving {os.getpid()}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
