"""Content fingerprints for reference images and files.

An inline image's fingerprint names its *decoded* bytes, yet the image is never decoded:
the base64 text is brought to canonical form and that ASCII text is hashed. Canonical
base64 and bytes correspond one to one, so equal fingerprints mean equal images, whichever
spelling (padded, unpadded, URL-safe, line-wrapped) a client used. The canonical form:

1. ASCII whitespace (space, tab, CR, LF) removed;
2. the URL-safe alphabet (`-_`) read as standard (`+/`), unless `+` or `/` also occur;
3. padded to a multiple of four, with the unused bits of the last quantum zeroed
   ("QR==" and "QQ==" both decode to b"A"); impossible padding gives `raw:` + the hash
   of the text as sent.

Anything else (stray characters, `=` inside, a mixed alphabet) is hashed as it stands:
such text is not a valid spelling of any image, and can never equal a canonical text.

Speed: text that needs no rewriting beyond its last quantum, the usual case, is hashed
in place; URL-safe text (what the Python SDK sends) is translated chunk by chunk on the
way into the hash, by SIMD when the optional `pybase64` is installed. Each chunk is read
from memory once, then scanned, translated and hashed from cache, so the cost stays near
one SHA-256 pass. Only the last four characters are ever decoded.
"""

from __future__ import annotations

import binascii
import hashlib
from types import ModuleType

Buffer = bytes | bytearray  # a request body, as read or preallocated

_simd: ModuleType | None
try:  # optional accelerator (the `fast` extra): SIMD base64, same results, faster
    import pybase64 as _simd
except ImportError:  # pragma: no cover - depends on the environment
    _simd = None

IMAGE_PREFIX = "img:"
RAW_PREFIX = "raw:"
FILE_PREFIX = "file:"

_WHITESPACE = (b" ", b"\n", b"\r", b"\t")
# Bytes that rule out the in-place path: whitespace, and the JSON escape character so
# that a caller reading base64 straight out of a JSON body can decode escapes first.
_NOT_PLAIN = (b"\\", *_WHITESPACE)
_CHUNK = 256 * 1024  # well inside L2: scanned and hashed while still cached
_STANDARD = (b"+", b"/")
_URLSAFE = (b"-", b"_")
_FROM_URLSAFE = bytes.maketrans(b"".join(_URLSAFE), b"".join(_STANDARD))
_PAD = 0x3D  # "="
# Padding allowed for each remainder of the unpadded length modulo 4.
_PADS_OK = {0: (0,), 2: (0, 2), 3: (0, 1)}

_Span = tuple[Buffer, int, int]


def image_fingerprint(data: str) -> str:
    """Fingerprint of the bytes a base64 `data` string encodes; never raises."""
    return image_fingerprint_buffer(data.encode("utf-8", "surrogatepass"))


def image_fingerprint_buffer(buf: Buffer, start: int = 0, end: int | None = None) -> str:
    """`image_fingerprint` of the UTF-8 text `buf[start:end]`, read in place if it can be."""
    stop = len(buf) if end is None else end
    plain = plain_image_fingerprint(buf, start, stop)
    if plain is not None:
        return plain
    span = _standard_alphabet(_without_whitespace((buf, start, stop)))
    tail = _tail(span)
    if tail is None:
        return RAW_PREFIX + hashlib.sha256(memoryview(buf)[start:stop]).hexdigest()
    text, begin, _ = span
    digest = hashlib.sha256(memoryview(text)[begin : tail[0]])
    digest.update(tail[1])
    return IMAGE_PREFIX + digest.hexdigest()


def plain_image_fingerprint(buf: Buffer, start: int = 0, end: int | None = None) -> str | None:
    """The fingerprint of text free of whitespace and backslashes, else None.

    None also when the text holds a backslash, so a caller holding raw JSON can tell it
    must decode escapes first; `image_fingerprint_buffer` covers every other case.
    """
    stop = len(buf) if end is None else end
    urlsafe = _looks_urlsafe(buf, start, stop)
    tail = _tail((buf, start, stop), urlsafe=urlsafe)
    if tail is None or (urlsafe and not _is_urlsafe_tail(buf[tail[0] : stop])):
        return None
    body_end, last = tail
    rejects = _NOT_PLAIN + _STANDARD if urlsafe else _NOT_PLAIN
    digest = hashlib.sha256()
    view = memoryview(buf)
    for low in range(start, body_end, _CHUNK):
        high = min(low + _CHUNK, body_end)
        if any(buf.find(byte, low, high) != -1 for byte in rejects):
            return None  # whitespace, backslash, or a mixed alphabet: not plain
        digest.update(_to_standard(buf[low:high]) if urlsafe else view[low:high])
    digest.update(last)
    return IMAGE_PREFIX + digest.hexdigest()


def file_fingerprint(uri: str) -> str:
    """Fingerprint of a file part: the file is named by its URI, hashed to a fixed size."""
    return FILE_PREFIX + hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()


def _looks_urlsafe(buf: Buffer, start: int, end: int) -> bool:
    """Rule 2 guessed from the first chunk; the caller checks the rest as it hashes."""
    probe = min(end, start + _CHUNK)
    if any(buf.find(byte, start, probe) != -1 for byte in _STANDARD):
        return False
    if any(buf.find(byte, start, probe) != -1 for byte in _URLSAFE):
        return True
    return not _is_standard(buf, start, end)


def _to_standard(chunk: Buffer) -> Buffer:
    """A chunk of whole quanta, URL-safe to standard alphabet.

    With pybase64 a SIMD decode and re-encode is ~4x faster than the stdlib, where two
    memchr-driven replaces beat `bytes.translate`. Both give the same bytes; SIMD refuses
    stray characters, which the replaces then keep as they stand.
    """
    if _simd is not None:
        try:
            return bytes(_simd.b64encode(_simd.b64decode(chunk, altchars=b"-_", validate=True)))
        except ValueError:
            pass
    return _to_standard_stdlib(chunk)


def _to_standard_stdlib(chunk: Buffer) -> Buffer:
    return chunk.replace(b"-", b"+").replace(b"_", b"/")


def _is_urlsafe_tail(tail: Buffer) -> bool:
    return not any(byte in tail for byte in _STANDARD)


def _is_standard(buf: Buffer, start: int, end: int) -> bool:
    """True unless the text must be read as URL-safe (rule 2); `+` or `/` come early."""
    if any(buf.find(byte, start, end) != -1 for byte in _STANDARD):
        return True
    return all(buf.find(byte, start, end) == -1 for byte in _URLSAFE)


def _without_whitespace(span: _Span) -> _Span:
    """Rule 1; copies only when there is whitespace."""
    buf, start, end = span
    if all(buf.find(ws, start, end) == -1 for ws in _WHITESPACE):
        return span
    stripped = buf[start:end].translate(None, b"".join(_WHITESPACE))
    return stripped, 0, len(stripped)


def _standard_alphabet(span: _Span) -> _Span:
    """Rule 2; copies only when the text is URL-safe."""
    buf, start, end = span
    if _is_standard(buf, start, end):
        return span
    translated = buf[start:end].translate(_FROM_URLSAFE)
    return translated, 0, len(translated)


def _tail(span: _Span, *, urlsafe: bool = False) -> tuple[int, bytes] | None:
    """Rule 3: where the last partial quantum starts and its canonical, padded spelling.

    None when the padding is impossible or the last characters are not base64.
    """
    buf, start, end = span
    pads = 0
    while pads < 2 and end - pads > start and buf[end - pads - 1] == _PAD:
        pads += 1
    core = end - pads
    rem = (core - start) % 4
    if pads not in _PADS_OK.get(rem, ()):
        return None
    if rem == 0:
        return end, b""
    last = buf[core - rem : core] + b"=" * (4 - rem)
    if urlsafe:
        last = last.translate(_FROM_URLSAFE)
    try:
        decoded = binascii.a2b_base64(last, strict_mode=True)
    except binascii.Error:
        return None
    return core - rem, binascii.b2a_base64(decoded, newline=False)
