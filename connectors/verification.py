"""The ways platforms prove a request is theirs, each compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

from connectors.base import BadSignature, InboundRequest, header


def shared_secret_header(request: InboundRequest, name: str, secret: str) -> None:
    """Raise BadSignature unless header `name` carries exactly the secret."""
    given = header(request.headers, name)
    if given is None:
        raise BadSignature(f"missing {name} header")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadSignature(f"{name} does not match the secret")


def basic_auth(request: InboundRequest, secret: str) -> None:
    """Raise BadSignature unless `Authorization: Basic` carries the secret, as `user:password`."""
    given = header(request.headers, "Authorization")
    if given is None:
        raise BadSignature("missing Authorization header")
    scheme, _, encoded = given.strip().partition(" ")
    if scheme.lower() != "basic":
        raise BadSignature("Authorization must use the Basic scheme")
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadSignature("Authorization Basic credentials are not base64") from None
    if not hmac.compare_digest(credentials, secret.encode()):
        raise BadSignature("Authorization credentials do not match the secret")


def header_secret_or_basic_auth(request: InboundRequest, name: str, secret: str) -> None:
    """Accept either header `name` equal to the secret, or basic auth `user:password` = secret.

    Platforms such as Dialogflow let the bot owner pick one in the console; we take whichever came.
    """
    if header(request.headers, name) is not None:
        shared_secret_header(request, name, secret)
    elif header(request.headers, "Authorization") is not None:
        basic_auth(request, secret)
    else:
        raise BadSignature(f"missing {name} header or Authorization: Basic credentials")


def hmac_signature_header(
    request: InboundRequest,
    secret: str,
    *,
    name: str,
    algorithm: str,
    encoding: str,
) -> None:
    """Raise BadSignature unless header `name` is `<algorithm>=<HMAC(secret, raw body)>`.

    `encoding` is "hex" (GitHub style, as Intercom sends) or "base64" (as LivePerson sends).
    """
    given = header(request.headers, name)
    if given is None:
        raise BadSignature(f"missing {name} header")
    prefix, _, value = given.strip().partition("=")
    digest = hmac.new(secret.encode(), request.body, algorithm).digest()
    if encoding == "hex":
        well_formed = prefix == algorithm and _is_hex(value, len(digest) * 2)
        expected = digest.hex()
        value = value.lower()
    else:
        well_formed = prefix == algorithm and _is_base64(value, len(digest))
        expected = base64.b64encode(digest).decode()
    if not well_formed:
        raise BadSignature(f"{name} must look like {algorithm}=<{encoding}>")
    if not hmac.compare_digest(expected.encode(), value.encode()):
        raise BadSignature("signature does not match the body")


_HEX = re.compile(r"[0-9a-fA-F]*")


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.fullmatch(value) is not None


def _is_base64(value: str, length: int) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == length
    except binascii.Error:
        return False


def check_hs256_jwt(token: str, secret: str, now: float) -> None:
    """Raise BadSignature unless `token` is a JWT signed HS256 with `secret` and not expired.

    Only HS256 is accepted, whatever the token's header claims, so "none" and key-confusion tokens
    fail. `exp` and `nbf` are honoured when present (with a minute of leeway for clock skew).
    """
    try:
        header_part, payload_part, signature_part = token.split(".")
        token_header = json.loads(_b64url(header_part))
        claims = json.loads(_b64url(payload_part))
        signature = _b64url(signature_part)
    except (ValueError, binascii.Error):
        raise BadSignature("JWT not accepted: not a well-formed token") from None
    if not isinstance(token_header, dict) or not isinstance(claims, dict):
        raise BadSignature("JWT not accepted: not a well-formed token")
    if token_header.get("alg") != "HS256":
        raise BadSignature(f"JWT not accepted: algorithm {token_header.get('alg')!r} is not HS256")
    signed = f"{header_part}.{payload_part}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise BadSignature("JWT not accepted: signature does not match the secret")
    expires, not_before = claims.get("exp"), claims.get("nbf")
    if isinstance(expires, int | float) and now > expires + _JWT_LEEWAY_SECONDS:
        raise BadSignature("JWT not accepted: expired")
    if isinstance(not_before, int | float) and now < not_before - _JWT_LEEWAY_SECONDS:
        raise BadSignature("JWT not accepted: not valid yet")


_JWT_LEEWAY_SECONDS = 60


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
