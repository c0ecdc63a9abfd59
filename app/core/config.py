"""Settings from the environment (prefix ``PULSE_``) and an optional ``.env`` file."""

from __future__ import annotations

import email.policy
import functools
import re
import sqlite3
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# The value `make run` would never write: refusing it outside development keeps a
# copied example configuration from signing real links.
INSECURE_SECRET_KEY = "change-me"
# Signs links in development when no PULSE_SECRET_KEY is set, so `pulse serve` and
# `pulse worker` agree; it is public (it is in this file), so production refuses it.
DEVELOPMENT_SECRET_KEY = "pulse-development-secret-not-for-production"
PUBLIC_SECRET_KEYS = (INSECURE_SECRET_KEY, DEVELOPMENT_SECRET_KEY)

EMAIL_SCHEMES = ("smtp", "smtp+ssl", "smtp+starttls", "file", "console")


# RETURNING and MATERIALIZED common table expressions (wave opening) arrived in 3.35.
MIN_SQLITE = (3, 35)


def normalize_database_url(url: str) -> str:
    """Map the URLs people write (``sqlite:///x.db``, ``postgres://…``) to our async drivers.

    Raises ValueError naming the scheme when it is not one we run on.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}; use sqlite:///path or postgresql://host/db")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ValueError(
                f"SQLite {'.'.join(map(str, MIN_SQLITE))} or newer is needed (RETURNING, "
                f"MATERIALIZED); this Python links SQLite {sqlite3.sqlite_version}: use a "
                "newer Python build or PostgreSQL"
            )
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return _asyncpg_query(f"postgresql+asyncpg://{rest}")
    raise ValueError(
        f"unsupported scheme {scheme!r}; use sqlite:///path or postgresql://user@host/db"
    )


# asyncpg's names for libpq's sslmode values.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Query parameters that reach asyncpg.connect as keyword arguments and work as text.
# (SQLAlchemy hands every other one over too, where asyncpg refuses it on each connect.)
ASYNCPG_QUERY = ("ssl", "target_session_attrs", "host", "prepared_statement_cache_size")


def _asyncpg_query(url: str) -> str:
    """The URL with libpq's query parameters in asyncpg's terms: ``sslmode`` becomes
    ``ssl``; one asyncpg cannot take (``application_name``, ``connect_timeout``) is a
    ValueError naming it, at start-up rather than on every connection."""
    parsed = make_url(url)
    if not parsed.query:
        return url
    query: dict[str, str] = {}
    for given, value in parsed.query.items():
        if not isinstance(value, str):
            raise ValueError(f"query parameter {given!r} is given more than once")
        name = given
        if name == "sslmode":
            if "ssl" in parsed.query:
                raise ValueError("give sslmode or ssl, not both")
            name = "ssl"
        elif name not in ASYNCPG_QUERY:
            raise ValueError(
                f"query parameter {name!r} is not supported by the PostgreSQL driver "
                f"(asyncpg); supported: sslmode, {', '.join(ASYNCPG_QUERY)}"
            )
        if name == "ssl" and value not in SSL_MODES:
            raise ValueError(f"{given} {value!r} is not one of {', '.join(SSL_MODES)}")
        query[name] = value
    return parsed.set(query=query).render_as_string(hide_password=False)


def validate_email_url(url: str) -> str:
    """Check an email URL's shape so a typo stops start-up instead of the first send."""
    parts = urlsplit(url)
    if parts.scheme not in EMAIL_SCHEMES:
        raise ValueError(
            f"unsupported scheme {parts.scheme!r}; use one of " + ", ".join(EMAIL_SCHEMES)
        )
    if parts.scheme.startswith("smtp"):
        if not parts.hostname:
            raise ValueError(
                "an smtp URL needs a host, e.g. smtp+starttls://user:pass@mail.example.com:587"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a non-numeric port
        except ValueError as exc:
            raise ValueError(f"bad port in {url!r}") from exc
    if parts.scheme == "file" and not parts.path:
        raise ValueError("a file URL needs a folder, e.g. file:///var/spool/pulse")
    return url


_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
EMAIL_FROM_EXAMPLE = "e.g. Pulse <pulse@example.com>"


def validate_email_from(value: str) -> str:
    """Exactly one sender address, read by the parser that writes the From header, so
    start-up accepts only what the envelope will carry: to that parser ``HR, Acme
    <hr@example.com>`` is two addresses, the first being ``HR``, and every email went
    out as ``MAIL FROM:<HR>``. Syntax only: a relay's own domain (``localhost``,
    ``corp.internal``) is a fine sender."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"must be a single line, {EMAIL_FROM_EXAMPLE}")
    header = email.policy.default.header_factory("From", value)
    addresses = header.addresses
    if len(addresses) > 1:
        # An address without a domain is the left half of a display name split at its comma.
        hint = (
            ' (quote a display name that has a comma: "HR, Acme" <hr@example.com>)'
            if any(not a.domain for a in addresses)
            else ""
        )
        raise ValueError(
            f"must be exactly one address, {EMAIL_FROM_EXAMPLE}; "
            f"{value!r} holds {len(addresses)}{hint}"
        )
    address = addresses[0] if addresses else None
    if (
        address is None
        or header.defects
        or any(group.display_name is not None for group in header.groups)
        or not address.username
        or not address.addr_spec.isascii()
        or not _DOMAIN.fullmatch(address.domain)
    ):
        raise ValueError(f"{value!r} is not an email address, {EMAIL_FROM_EXAMPLE}")
    return value


class Settings(BaseSettings):
    """Every setting, its default, and why that default. The README lists them too."""

    model_config = SettingsConfigDict(
        env_prefix="PULSE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///pulse.db"
    email_url: str = Field(default_factory=lambda: (Path.cwd() / "mail").as_uri())
    email_from: str = "Pulse <pulse@localhost>"
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    old_secret_keys: list[SecretStr] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_import_bytes: int = Field(default=20_971_520, ge=1024)
    idempotency_ttl_hours: int = Field(default=24, ge=1)
    worker_interval_seconds: float = Field(default=30.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    email_batch_size: int = Field(default=100, ge=1, le=10_000)
    email_max_attempts: int = Field(default=8, ge=1, le=100)
    email_retry_base_seconds: float = Field(default=60.0, gt=0)
    email_retry_max_seconds: float = Field(default=21_600.0, gt=0)
    email_lease_seconds: float = Field(default=300.0, gt=0)
    email_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("email_from")
    @classmethod
    def _email_from(cls, value: str) -> str:
        return validate_email_from(value)

    @field_validator("email_url")
    @classmethod
    def _email_url(cls, value: str) -> str:
        return validate_email_url(value)

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) origin, e.g. https://pulse.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret_outside_development(self) -> Settings:
        if self.env != "development":
            secret = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(secret) < 32 or secret in PUBLIC_SECRET_KEYS:
                raise ValueError(
                    "PULSE_SECRET_KEY must be set to at least 32 random characters outside "
                    "development (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once; tests call ``get_settings.cache_clear()``."""
    return Settings()


def describe_settings_error(exc: Exception) -> str:
    """One line for a bad configuration: which variable, and what is wrong with it."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            name = f"PULSE_{field.upper()}" if field else "configuration"
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {msg}")
        return "; ".join(parts)
    return str(exc)
