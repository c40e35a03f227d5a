"""Typed, frozen settings: embedded defaults, then a TOML file, then `GEMINI_GATEWAY_*` env.

Every setting lives in a section dataclass; the env override for `[section] key` is
`GEMINI_GATEWAY_<SECTION>_<KEY>` (lists are comma-separated). Validation errors name the
key, the bad value and where it came from, so a typo fails at start-up, not mid-request.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "GEMINI_GATEWAY_"
# Short aliases promised to users and scripts: env name -> (section, key).
ENV_ALIASES = {"GEMINI_GATEWAY_UPSTREAM": ("upstream", "url")}
SECRET_KEYS = {("cache", "secret"), ("admin", "token"), ("upstream", "api_key")}
NANO_BANANA_2 = ("gemini-3.1-flash-image*",)


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid; the message names it."""


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "gemini-gateway")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 160 * 1024 * 1024
    log_format: str = "json"
    log_level: str = "info"
    shutdown_timeout_seconds: float = 30.0

    def validate(self) -> None:
        _check(1 <= self.port <= 65535, "server.port", self.port, "must be 1..65535")
        _check(self.max_body_bytes > 0, "server.max_body_bytes", self.max_body_bytes, "must be > 0")
        _check(
            self.log_format in ("json", "console"),
            "server.log_format",
            self.log_format,
            "must be json or console",
        )
        _check(
            self.log_level.lower() in ("debug", "info", "warning", "error"),
            "server.log_level",
            self.log_level,
            "must be debug, info, warning or error",
        )


@dataclass(frozen=True)
class UpstreamSettings:
    url: str = "https://generativelanguage.googleapis.com"
    vertex_url: str = "https://aiplatform.googleapis.com"
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 600.0
    pool_size: int = 512
    connect_retries: int = 2
    api_key: str = ""

    def validate(self) -> None:
        for key in ("url", "vertex_url"):
            value = getattr(self, key)
            _check(
                value.startswith(("http://", "https://")),
                f"upstream.{key}",
                value,
                "must be an http(s) URL",
            )
        _check(
            self.connect_timeout_seconds > 0,
            "upstream.connect_timeout_seconds",
            self.connect_timeout_seconds,
            "must be > 0",
        )
        _check(
            self.read_timeout_seconds > 0,
            "upstream.read_timeout_seconds",
            self.read_timeout_seconds,
            "must be > 0",
        )
        _check(self.pool_size >= 1, "upstream.pool_size", self.pool_size, "must be >= 1")
        _check(
            0 <= self.connect_retries <= 10,
            "upstream.connect_retries",
            self.connect_retries,
            "must be 0..10",
        )


@dataclass(frozen=True)
class LanesSettings:
    models: tuple[str, ...] = NANO_BANANA_2
    per_lane_concurrency: int = 1
    max_waiting_per_lane: int = 64
    max_waiting_total: int = 1024
    max_queued_bytes: int = 1 << 30
    max_wait_seconds: float = 600.0

    def validate(self) -> None:
        for key in (
            "per_lane_concurrency",
            "max_waiting_per_lane",
            "max_waiting_total",
            "max_queued_bytes",
        ):
            _check(getattr(self, key) >= 1, f"lanes.{key}", getattr(self, key), "must be >= 1")
        _check(
            self.max_wait_seconds > 0,
            "lanes.max_wait_seconds",
            self.max_wait_seconds,
            "must be > 0",
        )


@dataclass(frozen=True)
class CacheSettings:
    backend: str = "disk"
    dir: str = field(default_factory=_default_cache_dir)
    max_bytes: int = 2 << 30
    memory_bytes: int = 256 << 20
    ttl_seconds: float = 7 * 24 * 3600.0
    models: tuple[str, ...] = ("*",)
    secret: str = ""

    def validate(self) -> None:
        _check(
            self.backend in ("disk", "memory", "off"),
            "cache.backend",
            self.backend,
            "must be disk, memory or off",
        )
        _check(self.max_bytes >= 1, "cache.max_bytes", self.max_bytes, "must be >= 1")
        _check(self.memory_bytes >= 0, "cache.memory_bytes", self.memory_bytes, "must be >= 0")
        _check(self.ttl_seconds > 0, "cache.ttl_seconds", self.ttl_seconds, "must be > 0")
        _check(
            not self.secret or len(self.secret) >= 16,
            "cache.secret",
            "***",
            "must be empty (generated) or at least 16 characters",
        )


@dataclass(frozen=True)
class MetricsSettings:
    path: str = "/metrics"
    port: int = 0
    models: tuple[str, ...] = (
        "gemini-3.1-flash-image-preview",
        "gemini-3.1-flash-image",
        "gemini-3-pro-image-preview",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
    )

    def validate(self) -> None:
        _check(self.path.startswith("/"), "metrics.path", self.path, "must start with /")
        _check(
            not re.match(r"^/(v\d|upload/|_gateway/)", self.path),
            "metrics.path",
            self.path,
            "must not shadow a Gemini API path or /_gateway/",
        )
        _check(0 <= self.port <= 65535, "metrics.port", self.port, "must be 0 (off) or 1..65535")


@dataclass(frozen=True)
class AdminSettings:
    token: str = ""

    def validate(self) -> None:
        _check(
            not self.token or len(self.token) >= 16,
            "admin.token",
            "***",
            "must be empty (admin writes off) or at least 16 characters",
        )


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    lanes: LanesSettings = field(default_factory=LanesSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)

    def validate(self) -> Settings:
        for section in dataclasses.fields(self):
            getattr(self, section.name).validate()
        return self

    def replace(self, section: str, **changes: Any) -> Settings:
        """A copy with some keys of one section changed (used by the CLI flags and tests)."""
        updated = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: updated}).validate()


def _check(ok: bool, key: str, value: object, why: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r}: {why}")


def _convert(raw: Any, hint: Any, key: str, source: str) -> Any:
    """Turn a TOML or env value into the field's type, naming the key on failure."""
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if hint is str:
            if not isinstance(raw, str):
                raise ValueError(raw)
            return raw
        if hint == tuple[str, ...]:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            if not all(isinstance(item, str) for item in items):
                raise ValueError(raw)
            return tuple(item.strip() for item in items if item.strip())
    except (TypeError, ValueError):
        shown = "***" if _is_secret_key(key) else repr(raw)
        raise ConfigError(
            f"{key} = {shown} (from {source}): not a valid {_type_name(hint)}"
        ) from None
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _type_name(hint: Any) -> str:
    return "list of strings" if hint == tuple[str, ...] else getattr(hint, "__name__", str(hint))


def _is_secret_key(key: str) -> bool:
    section, _, name = key.partition(".")
    return (section, name) in SECRET_KEYS


def _section_types() -> dict[str, type]:
    return {name: hint for name, hint in get_type_hints(Settings).items()}


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, overlaid by the TOML file (if any), overlaid by the environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, tuple[Any, str]]] = {}
    if path is not None:
        _merge_toml(values, Path(path))
    _merge_env(values, environ)
    sections: dict[str, Any] = {}
    for section, cls in _section_types().items():
        hints = get_type_hints(cls)
        kwargs = {
            key: _convert(raw, hints[key], f"{section}.{key}", source)
            for key, (raw, source) in values.get(section, {}).items()
        }
        sections[section] = cls(**kwargs)
    return Settings(**sections).validate()


def _merge_toml(values: dict[str, dict[str, tuple[Any, str]]], path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    types = _section_types()
    for section, table in data.items():
        if section not in types or not isinstance(table, dict):
            raise ConfigError(f"{section}: unknown section in {path} (known: {', '.join(types)})")
        known = get_type_hints(types[section])
        for key, raw in table.items():
            if key not in known:
                raise ConfigError(f"{section}.{key}: unknown setting in {path}")
            values.setdefault(section, {})[key] = (raw, str(path))


def _merge_env(values: dict[str, dict[str, tuple[Any, str]]], environ: Mapping[str, str]) -> None:
    names: dict[str, tuple[str, str]] = dict(ENV_ALIASES)
    for section, cls in _section_types().items():
        for key in get_type_hints(cls):
            names[f"{ENV_PREFIX}{section}_{key}".upper()] = (section, key)
    for name, (section, key) in names.items():
        if name in environ:
            values.setdefault(section, {})[key] = (environ[name], name)


def describe(settings: Settings) -> dict[str, dict[str, Any]]:
    """Effective settings as plain data, secrets masked (for `check-config`)."""
    out: dict[str, dict[str, Any]] = {}
    for section in dataclasses.fields(settings):
        data = dataclasses.asdict(getattr(settings, section.name))
        for key, value in data.items():
            if (section.name, key) in SECRET_KEYS:
                data[key] = "***" if value else ""
            elif isinstance(value, tuple):
                data[key] = list(value)
        out[section.name] = data
    return out
