"""The one typed configuration of the service and the trainer, read from the environment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydantic_settings
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsvc.model import Layout
from recsvc.ranking.rules import MerchRules


def redact_url(text: str) -> str:
    """Any ``scheme://user:password@host`` in ``text`` with the password masked (and a
    ``password=`` query parameter): error messages and logs never carry credentials."""
    text = re.sub(r"(\w+://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", text)


LOGGER = "recsvc"
"""The name the service logs under (one JSON object a line, ``recsvc.api.observability``)."""

MIN_ADMIN_TOKEN = 16
"""Characters an admin token needs at least: a short one is guessable."""


@dataclass(frozen=True)
class HeadLimits:
    """What one request head may be: bytes (request line and headers), header lines, and
    seconds to arrive complete."""

    max_bytes: int = 64 * 1024
    max_count: int = 100
    timeout_s: float = 10.0


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "recsvc"


class Settings(BaseSettings):
    """Every knob, from ``RECSVC_*`` variables (and ``REDIS_URL``), or passed in directly.

    No other module reads the environment: tests and ``create_app`` pass a ``Settings``.
    """

    model_config = SettingsConfigDict(env_prefix="RECSVC_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "RECSVC_REDIS_URL", "redis_url"),
        description="Redis to use; unset means the embedded Redis kept in data_dir.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the embedded Redis keeps its database (unused with REDIS_URL).",
    )
    allow_embedded_redis: bool = Field(
        default=True,
        description="Whether an unset REDIS_URL means the embedded Redis; false (as in the "
        "Kubernetes manifests) makes every command refuse to start without REDIS_URL.",
    )
    key_prefix: str = Field(default="recsvc", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    redis_cluster: bool = Field(
        default=False,
        description="Whether REDIS_URL names a node of a Redis Cluster: the trainer and the "
        "service then use redis-py's cluster clients and the cluster key layout (the "
        "pointers in one slot, each version's lists and histories in buckets spread over "
        "every master).",
    )

    @property
    def layout(self) -> Layout:
        """The key layout these settings name (prefix, single node or cluster)."""
        return (
            Layout.for_cluster(self.key_prefix) if self.redis_cluster else Layout(self.key_prefix)
        )

    redis_timeout_s: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"
    log_requests: bool = Field(
        default=True, description="One JSON log line per request, with its request id."
    )

    history_half_life_days: float = Field(
        default=30.0,
        gt=0,
        description="A purchase this many days older than the latest weighs half as much.",
    )
    because_limit: int = Field(default=3, ge=1, le=20)

    default_rules: MerchRules = Field(
        default_factory=MerchRules,
        description="Merchandising rules every request starts from (JSON in the environment).",
    )
    upsell_k: int = Field(default=3, ge=0, le=20, description="Upsell suggestions per cart.")
    upsell_min_ratio: float = Field(default=1.05, gt=0)
    upsell_max_ratio: float = Field(default=2.0, gt=0)

    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (https://shop.example) whose pages may call the API from a "
        "browser, as the storefront widget does; JSON list in the environment. Empty: none.",
    )
    cors_origin_regex: str | None = Field(
        default=None,
        description="A regular expression of further origins allowed as cors_origins are "
        "(recsvc demo allows http://localhost and http://127.0.0.1 on any port). Unset: none.",
    )
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 before they are read.",
    )

    max_header_bytes: int = Field(
        default=64 << 10,
        ge=4096,
        le=16 << 20,
        description="Largest request head (request line and headers): a larger one gets a "
        "JSON 431 and the connection closes, so no client makes a worker hold more.",
    )
    max_header_count: int = Field(
        default=100, ge=16, le=10_000, description="Most header lines in one request head."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Seconds a request head has to arrive complete, from a connection's "
        "start or a request's first byte: a slower one gets a 408 and the connection closes.",
    )

    @property
    def head_limits(self) -> HeadLimits:
        """The request-head limits these settings give the HTTP protocol."""
        return HeadLimits(self.max_header_bytes, self.max_header_count, self.header_timeout_s)

    rules_cache_bytes: int = Field(
        default=16 << 20,
        ge=0,
        description="Bytes of allowed-item masks (one per distinct rules) a worker keeps per "
        "model version, least recently used dropped first, and as many again of cart items' "
        "qualifying upsell alternatives; two versions are kept at most.",
    )

    refresh_interval_s: float = Field(
        default=0.25,
        ge=0,
        le=0.5,
        description="How often each worker reads the live version and stock epoch; a cart "
        "whose lists the worker keeps then needs no Redis round trip. A switch, rollback or "
        "stock change is served within two intervals. 0: read them on every request.",
    )
    list_cache_bytes: int = Field(
        default=64 << 20,
        ge=0,
        description="Bytes of decoded neighbour lists a worker keeps per model version "
        "(two versions at most), least recently used dropped first.",
    )

    train_memory_budget: str = Field(
        default="3.5GiB",
        pattern=r"^\s*[0-9]*\.?[0-9]+\s*[A-Za-z]*\s*$",
        description="Memory the trainer may use (3.5GiB, 4Gi, 3500MB): it plans its stages "
        "to fit and refuses cleanly (exit 2) what cannot. Keep it under the pod's limit.",
    )

    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin API (stock, prices); unset, empty or blank "
        f"disables it; a token shorter than {MIN_ADMIN_TOKEN} characters refuses to start.",
    )

    ingest_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the order-event API (POST /v1/events/orders), apart "
        "from the admin token; unset, empty or blank disables it, as for the admin token.",
    )
    events_max: int = Field(
        default=1_000_000,
        ge=1000,
        description="Order events the stream keeps for the next training; older ones are "
        "trimmed, and recsvc_events_trimmed says how many.",
    )
    event_dedupe_days: float = Field(
        default=30.0,
        gt=0,
        description="How long an order id is remembered: a second event for it in that "
        "time is a duplicate, ignored.",
    )

    @field_validator("cors_origin_regex", mode="after")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("admin_token", "ingest_token", mode="after")
    @classmethod
    def _admin_token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # "" or blanks: disabled, never "any empty bearer passes"
        if len(value.get_secret_value().strip()) < MIN_ADMIN_TOKEN:
            # The error names the field; load_settings names its variable, never the value.
            raise ValueError(
                f"too short: use at least {MIN_ADMIN_TOKEN} characters "
                "(for example the output of: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return SecretStr(value.get_secret_value().strip())


class SettingsError(Exception):
    """Settings the environment gives that cannot be used: bad input (exit 2). The
    message names each setting and what is wrong with it, never its value (a token or a
    password must not reach a log)."""

    exit_code = 2


def _variable(field: object) -> str:
    name = str(field)
    if name == "redis_url" or name.upper() == "REDIS_URL":
        return "REDIS_URL"
    if name in Settings.model_fields:
        return f"RECSVC_{name.upper()}"
    return name


PREFIX_HELP = (
    "the key prefix: which store's models on this Redis a command acts on (default: "
    "RECSVC_KEY_PREFIX, else recsvc); `recsvc status` lists the prefixes that hold one"
)


def with_prefix(settings: Settings, prefix: str | None) -> Settings:
    """``settings`` on another key prefix (``--prefix``), checked like the variable."""
    if prefix is None or prefix == settings.key_prefix:
        return settings
    try:
        return Settings.model_validate({**dict(settings), "key_prefix": prefix})
    except ValidationError:
        raise SettingsError(
            f"invalid --prefix {prefix!r}: 1 to 64 letters, digits, '_', '.' or '-'"
        ) from None


def load_settings(key_prefix: str | None = None) -> Settings:
    """``Settings()`` from the environment (``key_prefix``, when given, over
    ``RECSVC_KEY_PREFIX``), or a ``SettingsError`` naming what is wrong."""
    try:
        return with_prefix(Settings(), key_prefix)
    except ValidationError as exc:
        problems = [
            f"{_variable(error['loc'][0]) if error['loc'] else 'settings'}: "
            + str(error["msg"]).removeprefix("Value error, ")
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    except pydantic_settings.SettingsError as exc:
        # "error parsing value for field "cors_origins" ...": a JSON setting that is not JSON.
        found = re.search(r'field "(\w+)"', str(exc))
        name = _variable(found.group(1)) if found else "a setting"
        raise SettingsError(f"invalid settings: {name}: not valid JSON") from None
