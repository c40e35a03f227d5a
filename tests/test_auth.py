from pathlib import Path

from gateway.auth import SECRET_FILE, load_or_create_secret, scope
from gateway.config import CacheSettings


def test_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    settings = CacheSettings(dir=str(tmp_path))
    first = load_or_create_secret(settings)
    assert len(first) == 32
    assert load_or_create_secret(settings) == first
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600


def test_an_empty_or_short_secret_file_is_replaced(tmp_path: Path) -> None:
    settings = CacheSettings(dir=str(tmp_path))
    (tmp_path / SECRET_FILE).write_text("")
    assert len(load_or_create_secret(settings)) == 32
    (tmp_path / SECRET_FILE).write_text("abcd")
    assert len(load_or_create_secret(settings)) == 32


def test_scope_is_keyed_and_never_the_credential() -> None:
    a = scope(b"k" * 32, "AIzaKEY")
    assert a != scope(b"j" * 32, "AIzaKEY") and a != scope(b"k" * 32, "AIzaOTHER")
    assert "AIza" not in a and scope(b"k" * 32, "") == "anonymous"
