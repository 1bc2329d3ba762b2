"""The stand-in's error answer: a status, the Hub's X-Error-Code and its message."""

from __future__ import annotations


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
