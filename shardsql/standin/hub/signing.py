"""Signed, expiring storage URLs, in the two styles the Hub's storage redirects carry.

The Hub answers a file read with a 302 to a storage URL that is only valid for a while: an S3
presigned URL (``X-Amz-Date`` + ``X-Amz-Expires`` + ``X-Amz-Signature``) and, on the same URL, a
CloudFront signed URL (``Expires`` + ``Signature`` + ``Key-Pair-Id``), both expiring at the same
second. A client that keeps a resolved URL for longer than that gets a 403 from storage, not the
file: the stand-in plays this so that clients can be tested on it without waiting an hour.

The signatures are HMAC-SHA256 of the (unquoted) path and the expiry fields under a secret of the
stand-in's; they look like the real ones (hex for S3, CloudFront's URL-safe base64) but are not
AWS's algorithms. A URL's expiry is checked against the stand-in's wall clock (``hub.clock``).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

STYLES = ("amz", "cloudfront")
AMZ_DATE = "%Y%m%dT%H%M%SZ"
KEY_PAIR_ID = "K3STANDINHUB7Q"  # CloudFront names the key that signed the URL
ACCESS_DENIED = "Access Denied"  # S3's words
EXPIRED = "Request has expired"


@dataclass(frozen=True)
class Denial:
    """Why storage refuses a URL: S3's message, and the extra fields its XML error carries."""

    message: str
    fields: dict[str, str]


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Signer:
    """Signs storage paths and checks signed requests, with a secret of its own."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\n".join(parts).encode(), hashlib.sha256).digest()

    def _amz_signature(self, path: str, credential: str, date: str, expires: str) -> str:
        return self._mac("amz", path, credential, date, expires).hex()

    def _cloudfront_signature(self, path: str, expires: str) -> str:
        raw = base64.b64encode(self._mac("cloudfront", path, expires)).decode()
        return raw.translate(str.maketrans("+=/", "-_~"))  # CloudFront's URL-safe base64

    def sign(self, path: str, now: float, lifetime_s: int, styles: Sequence[str]) -> str:
        """The query string that signs `path` (unquoted) for `lifetime_s` seconds from `now` ('' if no styles)."""
        _check_styles(styles)
        issued = int(now)
        params: dict[str, str] = {}
        if "amz" in styles:
            date = time.strftime(AMZ_DATE, time.gmtime(issued))
            credential = f"standin/{date[:8]}/us-east-1/s3/aws4_request"
            params |= {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
                "X-Amz-Credential": credential,
                "X-Amz-Date": date,
                "X-Amz-Expires": str(lifetime_s),
                "X-Amz-Signature": self._amz_signature(path, credential, date, str(lifetime_s)),
                "X-Amz-SignedHeaders": "host",
                "x-id": "GetObject",
            }
        if "cloudfront" in styles:
            expires = str(issued + lifetime_s)
            signature = self._cloudfront_signature(path, expires)
            params |= {"Expires": expires, "Signature": signature, "Key-Pair-Id": KEY_PAIR_ID}
        return urlencode(params)

    def check(self, path: str, query: str, now: float, styles: Sequence[str]) -> Denial | None:
        """None if the request for `path` (unquoted) with `query` is signed in every style and unexpired."""
        _check_styles(styles)
        params = {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}
        expiries = []
        for style in styles:
            expiry = self._amz_expiry(path, params) if style == "amz" else self._cloudfront_expiry(path, params)
            if expiry is None:
                return Denial(ACCESS_DENIED, {})
            expiries.append(expiry)
        if expiries and now >= min(expiries):
            fields = {"X-Amz-Expires": params["X-Amz-Expires"]} if "amz" in styles else {}
            return Denial(EXPIRED, fields | {"Expires": iso(min(expiries)), "ServerTime": iso(int(now))})
        return None

    def _amz_expiry(self, path: str, params: dict[str, str]) -> int | None:
        credential, date, expires = (params.get(k, "") for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires"))
        expected = self._amz_signature(path, credential, date, expires)
        if not hmac.compare_digest(params.get("X-Amz-Signature", ""), expected) or not expires.isdigit():
            return None
        try:
            return calendar.timegm(time.strptime(date, AMZ_DATE)) + int(expires)
        except ValueError:
            return None

    def _cloudfront_expiry(self, path: str, params: dict[str, str]) -> int | None:
        expires = params.get("Expires", "")
        if params.get("Key-Pair-Id") != KEY_PAIR_ID or not expires.isdigit():
            return None
        if not hmac.compare_digest(params.get("Signature", ""), self._cloudfront_signature(path, expires)):
            return None
        return int(expires)


def _check_styles(styles: Sequence[str]) -> None:
    if unknown := [s for s in styles if s not in STYLES]:
        raise ValueError(f"signed URL styles are {STYLES}, got {unknown}")
