"""Binance request signatures (HMAC-SHA256), sans-I/O.

Binance's rule (WebSocket API, "SIGNED request example (HMAC)"): take every request parameter except ``signature``,
sort them by name, join them as ``name=value`` with ``&``, and sign that payload with the secret key as
HMAC-SHA256; the signature is the lower-case hex digest (verification is case-insensitive for HMAC).

Two spellings of the payload are in use by real clients, and :func:`verify` accepts both:

- the *plain* payload, exactly as the documentation's worked example builds it (``price=52000.00``);
- the *percent-encoded* payload (``urllib.parse.urlencode``), which the official Python SDK
  (``binance_common.utils.websocket_api_signature``) signs, and which Binance requires on the REST API since
  2026-01-15. For values made of ``[A-Za-z0-9._-]`` only (every number, enum and generated id) the two are equal.

A value is rendered as it was sent: a JSON string as itself, an integer in decimal, a JSON number with a fraction
as its original text (:class:`RawNumber`, see :func:`loads`), ``true``/``false`` for booleans and compact JSON for
arrays and objects. Secrets never appear in any return value or exception text of this module.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

__all__ = ["RawNumber", "loads", "param_text", "signature_payload", "sign", "verify"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-~")


class RawNumber(str):
    """A JSON number with a fraction or exponent, kept as the exact text the client sent (``"52000.00"``).

    Decimals must not pass through a float: ``52000.00`` would sign as ``52000.0`` and parse inexactly.
    """

    __slots__ = ()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes, **kwargs):
    """``json.loads`` that keeps fractional numbers as :class:`RawNumber` and rejects NaN/Infinity."""
    return json.loads(text, parse_float=RawNumber, parse_constant=_reject_constant, **kwargs)


def param_text(value) -> str:
    """The text of one parameter value in a signature payload (see the module docstring)."""
    if isinstance(value, str):  # includes RawNumber
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def signature_payload(params: Mapping[str, object], *, encode=None) -> str:
    """``name=value`` pairs of every parameter but ``signature``, sorted by name, joined by ``&``.

    ``encode`` (e.g. :func:`urllib.parse.quote_plus`) is applied to each value when given.
    """
    parts = []
    for name in sorted(params):
        if name == "signature":
            continue
        text = param_text(params[name])
        parts.append(f"{name}={encode(text) if encode else text}")
    return "&".join(parts)


def sign(secret: str, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` keyed with ``secret`` (both as UTF-8), lower-case hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, params: Mapping[str, object], signature: str) -> bool:
    """Whether ``signature`` signs ``params`` under ``secret``, in the plain or the percent-encoded spelling.

    Constant-time comparison; HMAC signatures compare case-insensitively, as Binance documents.
    """
    if not isinstance(signature, str):
        return False
    got = signature.lower().encode()
    plain = signature_payload(params)
    if hmac.compare_digest(sign(secret, plain).encode(), got):
        return True
    if all(set(param_text(v)) <= _UNRESERVED for k, v in params.items() if k != "signature"):
        return False  # nothing to encode: the encoded payload is the plain one
    for encode in (quote_plus, lambda s: quote(s, safe="-_.~")):
        if hmac.compare_digest(sign(secret, signature_payload(params, encode=encode)).encode(), got):
            return True
    return False
