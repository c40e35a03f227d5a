"""Image and file fingerprints: same bytes, same fingerprint; different bytes, different."""

from __future__ import annotations

import base64
import binascii
import hashlib
import random

import pytest

from gateway import fingerprint
from gateway.fingerprint import (
    FILE_PREFIX,
    IMAGE_PREFIX,
    RAW_PREFIX,
    file_fingerprint,
    image_fingerprint,
    image_fingerprint_buffer,
)


def spellings(raw: bytes) -> list[str]:
    """Every spelling of `raw` a client may send."""
    padded = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    wrapped = "\n".join(padded[i : i + 76] for i in range(0, len(padded), 76))
    return [
        padded,
        padded.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
        wrapped,
        base64.encodebytes(raw).decode(),  # MIME: trailing newline too
        " ".join(padded[i : i + 4] for i in range(0, len(padded), 4)),
        wrapped.replace("\n", "\r\n").rstrip("="),
    ]


@pytest.mark.parametrize("size", range(0, 13))
def test_every_spelling_of_the_same_bytes_agrees(size: int) -> None:
    raw = bytes(random.Random(size).getrandbits(8) for _ in range(size)) + b"\xfb\xff"
    fingerprints = {image_fingerprint(text) for text in spellings(raw)}
    assert fingerprints == {image_fingerprint(base64.b64encode(raw).decode())}
    assert next(iter(fingerprints)).startswith(IMAGE_PREFIX)


def test_many_random_images_agree_across_spellings_and_differ_between() -> None:
    rng = random.Random(7)
    seen: dict[str, bytes] = {}
    for _ in range(300):
        raw = rng.randbytes(rng.randrange(0, 200))
        fingerprints = {image_fingerprint(text) for text in spellings(raw)}
        assert len(fingerprints) == 1
        fingerprint = fingerprints.pop()
        assert seen.setdefault(fingerprint, raw) == raw


def test_non_zero_trailing_bits_name_the_same_bytes() -> None:
    # "QR==" and "QQ==" both decode to b"A"; "QUJ" / "QUI=" / "QUK=" to b"AB".
    assert image_fingerprint("QR==") == image_fingerprint("QQ==") == image_fingerprint("QR")
    assert image_fingerprint("QUJ") == image_fingerprint("QUI=") == image_fingerprint("QUK=")
    assert image_fingerprint("QQ==") != image_fingerprint("Qg==")  # b"A" vs b"B"


def test_different_images_differ() -> None:
    assert image_fingerprint("AAAA") != image_fingerprint("AAAB")
    assert image_fingerprint("aGVsbG8=") != image_fingerprint("aGVsbHA=")  # hello vs hellp
    assert image_fingerprint("aGVsbG8=") == image_fingerprint("aGVsbG9=")  # unused bits only


@pytest.mark.parametrize("text", ["Q", "QQ=", "QQ===", "QUJD=", "QQ!=", "QUJDQ", "Q\\=="])
def test_impossible_padding_gets_a_raw_fingerprint(text: str) -> None:
    assert image_fingerprint(text) == RAW_PREFIX + hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("stray", "valid"),
    [("QQ==QQ==", "QQQQ"), ("ab+-", "ab++"), ("a/b_", "a/b/"), ("QR=Q", "QRQQ"), ("AA\\/", "AA//")],
)
def test_stray_characters_are_hashed_as_they_stand(stray: str, valid: str) -> None:
    assert image_fingerprint(stray).startswith(IMAGE_PREFIX)
    assert image_fingerprint(stray) != image_fingerprint(valid)


@pytest.mark.parametrize("text", ["", "not base64 at all!", "ünïcödé", "\ud800x", "a" * 4097])
def test_anything_gets_a_deterministic_fingerprint(text: str) -> None:
    fingerprint = image_fingerprint(text)
    assert fingerprint == image_fingerprint(text)
    assert len(fingerprint.split(":", 1)[1]) == 64


def test_stray_characters_never_collide_with_a_real_image() -> None:
    assert image_fingerprint("QUJD!AAA") != image_fingerprint("QUJDAAAA")
    assert image_fingerprint("QUJD.AAA") != image_fingerprint("QUJD")


def test_buffer_form_matches_string_form_in_place() -> None:
    text = base64.urlsafe_b64encode(random.Random(1).randbytes(5000)).decode().rstrip("=")
    body = b'{"data":"' + text.encode() + b'"}'
    start = body.index(b':"') + 2
    assert image_fingerprint_buffer(body, start, start + len(text)) == image_fingerprint(text)
    assert image_fingerprint_buffer(text.encode()) == image_fingerprint(text)


def test_file_fingerprint_is_the_uri() -> None:
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc-123"
    assert file_fingerprint(uri) == file_fingerprint(uri)
    assert file_fingerprint(uri) != file_fingerprint(uri + "4")
    assert file_fingerprint(uri).startswith(FILE_PREFIX)
    assert len(file_fingerprint("x" * 10_000)) == len(file_fingerprint("y"))


def test_file_and_image_fingerprints_live_apart() -> None:
    assert file_fingerprint("QUJD") != image_fingerprint("QUJD")


def reference(text: bytes) -> str:
    """The module docstring's definition, written the slow and obvious way."""
    canon = text.translate(None, b" \t\r\n")
    if b"+" not in canon and b"/" not in canon:
        canon = canon.translate(bytes.maketrans(b"-_", b"+/"))
    pads = 0
    while pads < 2 and len(canon) > pads and canon[-1 - pads] == ord("="):
        pads += 1
    core = canon[: len(canon) - pads]
    rem = len(core) % 4
    if pads not in {0: (0,), 2: (0, 2), 3: (0, 1)}.get(rem, ()):
        return RAW_PREFIX + hashlib.sha256(text).hexdigest()
    if rem:
        try:
            last = binascii.a2b_base64(core[-rem:] + b"=" * (4 - rem), strict_mode=True)
        except binascii.Error:
            return RAW_PREFIX + hashlib.sha256(text).hexdigest()
        canon = core[:-rem] + binascii.b2a_base64(last, newline=False)
    return IMAGE_PREFIX + hashlib.sha256(canon).hexdigest()


def test_in_place_path_and_rewriting_path_follow_one_definition() -> None:
    """Random texts across chunk boundaries, with odd bytes at random places."""
    rng = random.Random(11)
    odd = [b" ", b"\n", b"\r", b"\t", b"\\", b"-", b"_", b"=", b"!", b"+", b"/"]
    for _ in range(60):
        text = bytearray(base64.b64encode(rng.randbytes(rng.choice([10, 300_000, 700_000]))))
        if rng.random() < 0.5:
            text = bytearray(text.translate(bytes.maketrans(b"+/", b"-_")))
        for _ in range(rng.choice([0, 0, 1, 3])):
            text[rng.randrange(len(text) + 1) : 0] = rng.choice(odd)
        if rng.random() < 0.3:
            text = text.rstrip(b"=")
        assert image_fingerprint_buffer(bytes(text)) == reference(bytes(text))


def test_simd_and_stdlib_translation_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """pybase64 (when installed) only speeds URL-safe text up; results are identical."""
    rng = random.Random(5)
    texts = [base64.urlsafe_b64encode(rng.randbytes(n)).decode() for n in (3, 400_000, 900_001)]
    texts += [texts[1][:1000] + "!" + texts[1][1000:], texts[2].rstrip("=")]
    with_simd = [image_fingerprint(text) for text in texts]
    monkeypatch.setattr(fingerprint, "_simd", None)
    assert [image_fingerprint(text) for text in texts] == with_simd
    assert with_simd[:3] == [
        image_fingerprint(text.replace("-", "+").replace("_", "/")) for text in texts[:3]
    ]
