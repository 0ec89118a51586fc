"""``recsvc serve``, ``recsvc demo`` (train on the bundled sample, then serve) and
``recsvc cluster`` (a local Redis Cluster)."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr
from uvicorn.supervisors import Multiprocess

from recsvc.api.app import create_app
from recsvc.api.protocol import ServiceConfig
from recsvc.cli.common import DEMO_PREFIX_SUFFIX, EXIT_BAD_INPUT, EXIT_NO_MODEL, fail, sample_path
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


DEMO_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?$"
DEMO_ENV = "demo.env"


def demo_settings(settings: Settings) -> Settings:
    """The demo, a complete sandbox: its own key prefix (it never gates against, nor
    replaces, the store's model); pages on localhost and 127.0.0.1 (any port) may call it
    when no origin is named; and an admin and an ingest token, generated where they are not
    set, so that every README block runs against it."""
    update: dict[str, object] = {"key_prefix": settings.key_prefix + DEMO_PREFIX_SUFFIX}
    if not settings.cors_origins and settings.cors_origin_regex is None:
        update["cors_origin_regex"] = DEMO_ORIGINS
    for name in ("admin_token", "ingest_token"):
        if getattr(settings, name) is None:
            update[name] = SecretStr(secrets.token_urlsafe(24))
    return settings.model_copy(update=update)


def demo_env_lines(settings: Settings) -> list[str]:
    """The demo's tokens as shell ``export`` lines, to paste or to ``eval``."""
    lines = []
    for name, token in (
        ("RECSVC_ADMIN_TOKEN", settings.admin_token),
        ("RECSVC_INGEST_TOKEN", settings.ingest_token),
    ):
        if token is not None:
            lines.append(f"export {name}={shlex.quote(token.get_secret_value())}")
    return lines


def save_demo_env(settings: Settings) -> Path:
    """Writes the demo's ``export`` lines to ``data_dir/demo.env``, readable by its owner
    only, for ``recsvc demo --env`` in another shell."""
    path = settings.data_dir / DEMO_ENV
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(demo_env_lines(settings)) + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
    return path


def print_demo_env(settings: Settings) -> int:
    """``recsvc demo --env``: the running (or last) demo's tokens, as ``export`` lines."""
    path = settings.data_dir / DEMO_ENV
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return fail(
            EXIT_NO_MODEL,
            f"no demo has run with this data directory ({settings.data_dir}): start "
            "`recsvc demo` first",
        )
    print(text, end="")
    return 0


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
