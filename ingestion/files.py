"""Decide what a file is before anything expensive runs, and refuse what cannot work.

Every refusal is a specific, non-retryable `keel.errors` exception, so a batch records the reason
for that file and moves on.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from keel.errors import EmptyFile, FileTooLarge, NotText, UnsafeName, UnsupportedType

# extension -> kind; kinds map to an unstructured partitioner in parse.py
EXTENSIONS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".xml": "xml",
    ".eml": "email",
}
TEXT_KINDS = frozenset({"html", "md", "text", "xml", "email"})
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class FileKind:
    kind: str
    extension: str


def check_name(name: str) -> str:
    """A display name for an uploaded file; refuse names that try to escape or hide.

    Refuses rather than silently cleans: a name like `../../etc/passwd` is a sign of a broken or
    hostile client, and the caller should hear about it.
    """
    if not name or len(name) > MAX_NAME_CHARS:
        raise UnsafeName(f"file name must be 1-{MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UnsafeName("file name contains control characters")
    for path_cls in (PurePosixPath, PureWindowsPath):
        parts = path_cls(name).parts
        if len(parts) != 1 or parts[0] in {".", ".."} or path_cls(name).is_absolute():
            raise UnsafeName(f"file name {name!r} contains a path; send the bare file name")
    if name.startswith(".") or name.strip() != name:
        raise UnsafeName(f"file name {name!r} is hidden or has surrounding spaces")
    return name


def classify(name: str, size: int, max_bytes: int) -> FileKind:
    """Kind from the extension, with size limits; content is sniffed later by `sniff`."""
    if size == 0:
        raise EmptyFile("the file is empty (0 bytes)")
    if size > max_bytes:
        raise FileTooLarge(f"the file is {size:,} bytes; the limit is {max_bytes:,} bytes")
    ext = PurePosixPath(name.lower()).suffix
    kind = EXTENSIONS.get(ext)
    if kind is None:
        supported = ", ".join(sorted(EXTENSIONS))
        raise UnsupportedType(f"unsupported file type {ext or '(no extension)'!r}; supported: {supported}")
    return FileKind(kind=kind, extension=ext)


def decode_text(data: bytes, allow_legacy: bool) -> tuple[str, str]:
    """Bytes of a text-kind file to str, with the encoding used.

    UTF-8 (with or without BOM) and BOM-marked UTF-16 decode as such. Anything else is either
    binary junk (refused) or a legacy single-byte encoding, decoded only when `allow_legacy`.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise NotText(f"the file has a UTF-16 byte-order mark but does not decode: {exc}") from exc
    head = data[:8192]
    if b"\x00" in head or _control_ratio(head) > 0.05:
        raise NotText("the file looks binary (NUL or control bytes), not text")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    text, encoding = _guess_legacy(data)
    if text is None:
        raise NotText(f"the file is not UTF-8 text and its encoding cannot be recognised ({utf8_error.reason})")
    if not allow_legacy:
        raise NotText(
            f"the file is not UTF-8 (it looks like {encoding}); re-save it as UTF-8, "
            "or set KEEL_DECODE_LEGACY_TEXT=true"
        )
    return text, encoding


def _guess_legacy(data: bytes) -> tuple[str | None, str]:
    """Mostly-ASCII text with a few high bytes is almost always Windows-1252 (Western European);
    statistical detectors mistake short samples of it for CJK codecs. Anything else is detected."""
    ascii_share = sum(1 for b in data if b < 128) / len(data)
    if ascii_share >= 0.9:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.chaos > 0.3:
        return None, "unknown"
    return str(best), best.encoding


def _control_ratio(data: bytes) -> float:
    if not data:
        return 0.0
    allowed = {9, 10, 12, 13, 27}
    controls = sum(1 for b in data if b < 32 and b not in allowed)
    return controls / len(data)
