"""``recsvc serve``, ``recsvc demo`` (train on the bundled sample, then serve) and
``recsvc cluster`` (a local Redis Cluster)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from recsvc.api.app import create_app
from recsvc.api.protocol import ServiceConfig
from recsvc.cli.common import DEMO_PREFIX_SUFFIX, EXIT_BAD_INPUT, fail, sample_path
from recsvc.config import Settings


def serve(settings: Settings) -> None:
    # The request-head limits travel in uvicorn's config, which every worker is handed.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
    }
    if settings.workers > 1:
        # Several workers need an importable factory; each reads the same environment.
        config = ServiceConfig(
            "recsvc.api.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            head_limits=settings.head_limits,
            **options,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        config = ServiceConfig(create_app(settings), head_limits=settings.head_limits, **options)
        uvicorn.Server(config).run()


def demo_settings(settings: Settings) -> Settings:
    """The demo's own key prefix: it never gates against, nor replaces, the store's model."""
    return settings.model_copy(update={"key_prefix": settings.key_prefix + DEMO_PREFIX_SUFFIX})


def train_demo(settings: Settings) -> int:
    """Trains the bundled sample into ``settings`` (the demo's): the trainer's exit code."""
    from training.cli.main import main as train_main

    return train_main(
        ["train", "--purchases", str(sample_path()), "--preset", "online-retail"], settings
    )


def embedded_forbidden(settings: Settings) -> int | None:
    if settings.redis_url or settings.allow_embedded_redis:
        return None
    return fail(
        EXIT_BAD_INPUT,
        "REDIS_URL is not set and the embedded Redis is not allowed here "
        "(RECSVC_ALLOW_EMBEDDED_REDIS=false): set REDIS_URL to the model's Redis",
    )


def run_cluster(args: argparse.Namespace, settings: Settings) -> int:
    from recsvc.store import localcluster

    try:
        if args.action == "stop":
            n = localcluster.stop(args.port, args.masters)
            print(f"stopped {n} node(s) on ports {args.port}..{args.port + args.masters - 1}")
            return 0
        urls = localcluster.start(
            args.dir or settings.data_dir / "cluster", args.port, args.masters
        )
    except (localcluster.LocalClusterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"a {len(urls)}-master Redis Cluster answers on {', '.join(urls)}; use it with:")
    print(f"  export RECSVC_REDIS_CLUSTER=true REDIS_URL={urls[0]}")
    return 0
