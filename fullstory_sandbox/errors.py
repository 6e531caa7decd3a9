"""The one error type the API raises; the server turns it into `{"code", "message"}` JSON."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, int | str]:
        return {"code": self.status, "message": self.message}
