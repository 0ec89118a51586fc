"""``recsvc``: run the service (``serve``), or train on the bundled sample and serve (``demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import uvicorn

from recsvc.app import create_app
from recsvc.config import Settings

SAMPLE = "online_retail_sample.csv.gz"


def sample_path() -> Path:
    return Path(str(resources.files("recsvc") / "data" / SAMPLE))


def _serve(settings: Settings) -> None:
    if settings.workers > 1:
        # Several workers need an importable factory; each reads the same environment.
        uvicorn.run(
            "recsvc.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve the live model"),
        ("demo", "train on the bundled Online Retail sample, then serve"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", help="default: RECSVC_HOST or 127.0.0.1")
        p.add_argument("--port", type=int, help="default: RECSVC_PORT or 8000")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)

    if args.command == "demo":
        from training.cli import main as train_main

        code = train_main(
            ["train", "--purchases", str(sample_path()), "--preset", "online-retail"], settings
        )
        if code:
            return code
        base = f"http://{settings.host}:{settings.port}"
        print(
            "\nServing the demo model. Try:\n"
            f"  curl -s {base}/v1/recommendations/cart -H 'content-type: application/json' \\\n"
            '       -d \'{"items": ["85123A", "71053"], "k": 5}\'\n'
            f"  curl -s {base}/v1/items/85123A/similar?k=5\n"
            f"  open {base}/docs for the API\n",
            file=sys.stderr,
            flush=True,
        )
    _serve(settings)
    return 0
