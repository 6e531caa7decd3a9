"""Checks a downloaded export as it streams by: a complete gzip (CRC and length, member by
member) or, when a proxy inflated it on the way, plain text of the format asked for."""

from __future__ import annotations

import re
import zlib

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


# the start of a CSV header of FullStory field names (the peek may cut it anywhere)
_CSV_HEADER = re.compile(rb'^"?[A-Za-z_][\w.]*"?(,"?[A-Za-z_][\w.]*"?)*,?"?[\w.]*(\r?\n|$)')


def looks_like(export_format: str, head: bytes) -> bool:
    if not head:
        return True  # an empty export
    if export_format == "json":
        return head.startswith(b"[")
    if export_format == "ndjson":
        return head.startswith(b"{")
    return bool(_CSV_HEADER.match(head))


class GzipCheck:
    """Verifies a gzip stream as it passes by (CRC and length, member by member) without
    keeping what it inflates, so a truncated or damaged download is caught before loading."""

    _PEEK = 64

    def __init__(self) -> None:
        self.received = 0
        self.compressed: bool | None = None
        self._inflater = zlib.decompressobj(wbits=31)
        self._head = b""
        self._inflated = 0
        self._error: str | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.received += len(chunk)
        if self.compressed is None:
            self.compressed = chunk[:2] == GZIP_MAGIC
        if not self.compressed:
            if len(self._head) < self._PEEK:
                self._head += chunk[: self._PEEK]
            return
        if self._error is None:
            self._inflate(chunk)

    def _inflate(self, data: bytes) -> None:
        try:
            while data:
                out = self._inflater.decompress(data, CHUNK)
                self._note(out)
                data = self._inflater.unconsumed_tail
                if self._inflater.eof and self._inflater.unused_data:
                    # a multi-member gzip: the next member starts here
                    data = self._inflater.unused_data
                    self._inflater = zlib.decompressobj(wbits=31)
        except zlib.error as error:
            self._error = f"the file is not a valid gzip ({error})"

    def _note(self, out: bytes) -> None:
        if len(self._head) < self._PEEK:
            self._head += out[: self._PEEK]
        self._inflated += len(out)

    @property
    def empty(self) -> bool:
        return self._head.strip() in (b"", b"[]") and self._inflated < self._PEEK

    def problem(self, export_format: str) -> str | None:
        if self.received == 0:
            return "the download was empty (0 bytes; an export is always a gzip file)"
        if self._error:
            return self._error
        if self.compressed:
            if not self._inflater.eof:
                return f"the gzip file is truncated ({self.received} bytes received)"
            return None
        # Not gzip: some clients and proxies inflate on the way. Accept it only if it
        # looks like the text we asked for; anything else (an error page) is a damaged download.
        if not looks_like(export_format, self._head.lstrip(b"\xef\xbb\xbf").lstrip()):
            return f"the file is neither gzip (no 1f 8b magic bytes) nor plain {export_format}"
        return None
