"""Presigned-style download links: an HMAC over the export id and expiry, like a signed storage URL."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from urllib.parse import quote, urlencode


class LinkSigner:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._secret = secrets.token_bytes(32)
        # expire_all() bumps the generation; links signed under an older one count as expired.
        self._generation = 0
        self._lock = threading.Lock()

    def _signature(self, export_id: str, expires: str, generation: int) -> str:
        message = f"{export_id}\n{expires}\n{generation}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, export_id: str) -> tuple[str, float]:
        """Return (path with query, expiry as unix time) for a fresh link to the export."""
        expires = str(math.ceil(time.time() + self.ttl))
        with self._lock:
            signature = self._signature(export_id, expires, self._generation)
        query = urlencode({"expires": expires, "signature": signature})
        return f"/download/{quote(export_id, safe='')}?{query}", float(expires)

    def expire_all(self) -> None:
        with self._lock:
            self._generation += 1

    def problem(self, export_id: str, expires: str, signature: str) -> str | None:
        """Why the link is refused (answered with 403), or None when it is valid."""
        with self._lock:
            current = self._generation
        for generation in range(current, -1, -1):
            if hmac.compare_digest(self._signature(export_id, expires, generation), signature):
                if generation < current or time.time() >= float(expires):
                    return "Request has expired"
                return None
        return "The request signature we calculated does not match the signature you provided."
