from pathlib import Path

import pytest

from gateway.config import ConfigError, describe, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_need_no_file_or_env() -> None:
    settings = load_settings(environ={})
    assert settings.server.port == 8080
    assert settings.upstream.url == "https://generativelanguage.googleapis.com"
    assert settings.lanes.models == ("gemini-3.1-flash-image*",)
    assert settings.cache.backend == "disk"


def test_shipped_file_matches_the_defaults() -> None:
    shipped = load_settings(REPO / "config" / "gateway.toml", environ={})
    defaults = load_settings(environ={})
    assert describe(shipped) == describe(defaults)


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text('[lanes]\nmax_wait_seconds = 5\nmodels = ["a*"]\n')
    settings = load_settings(
        path,
        environ={
            "GEMINI_GATEWAY_LANES_MAX_WAIT_SECONDS": "7.5",
            "GEMINI_GATEWAY_LANES_MODELS": "x*, y",
            "GEMINI_GATEWAY_UPSTREAM": "http://127.0.0.1:9",
            "GEMINI_GATEWAY_CACHE_DIR": str(tmp_path / "c"),
        },
    )
    assert settings.lanes.max_wait_seconds == 7.5
    assert settings.lanes.models == ("x*", "y")
    assert settings.upstream.url == "http://127.0.0.1:9"
    assert settings.cache.dir == str(tmp_path / "c")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GEMINI_GATEWAY_LANES_PER_LANE_CONCURRENCY": "two"}, "lanes.per_lane_concurrency"),
        ({"GEMINI_GATEWAY_LANES_PER_LANE_CONCURRENCY": "0"}, "lanes.per_lane_concurrency"),
        ({"GEMINI_GATEWAY_CACHE_BACKEND": "redis-ish"}, "cache.backend"),
        ({"GEMINI_GATEWAY_UPSTREAM": "ftp://x"}, "upstream.url"),
        ({"GEMINI_GATEWAY_SERVER_PORT": "70000"}, "server.port"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(environ=env)


def test_unknown_keys_and_sections_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[lanes]\nmax_wiat_seconds = 5\n")
    with pytest.raises(ConfigError, match=r"lanes\.max_wiat_seconds"):
        load_settings(path, environ={})
    path.write_text("[lane]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_settings(path, environ={})


def test_secrets_are_masked_everywhere() -> None:
    settings = load_settings(
        environ={
            "GEMINI_GATEWAY_ADMIN_TOKEN": "t" * 20,
            "GEMINI_GATEWAY_UPSTREAM_API_KEY": "AIzaSECRETSECRET",
            "GEMINI_GATEWAY_CACHE_SECRET": "s3cret-s3cret-s3cret",
        }
    )
    text = repr(describe(settings))
    assert "AIzaSECRET" not in text and "t" * 20 not in text and "s3cret" not in text
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GEMINI_GATEWAY_ADMIN_TOKEN": "short-secret"})
    assert "short-secret" not in str(info.value)
