"""Who may call what: customer authentication as a mode (``AUTH_MODE``).

``open`` (the default) is the load-test report's contract: nobody is asked who they are, so
anyone who can reach the API can read any customer's balance and history, charge any
customer's points and issue a queue token for any customer. For benchmarks and trusted
networks only.

``jwt``: a request that names a customer (issue, balance, history) carries
``Authorization: Bearer <JWT>`` whose ``sub`` is that customer id (else 403
FORBIDDEN_CUSTOMER); a charge needs a JWT whose space-separated ``scope`` has
``points:charge`` (the payment back end's token, not a customer's). The queue-token endpoints
stay bound to the customer through the queue token, which then travels in ``X-Queue-Token``
(Authorization carries the JWT). The key is ``AUTH_JWT_SECRET`` (HS256) or
``AUTH_JWT_PUBLIC_KEY`` (PEM: RS256 for RSA, ES256 for P-256): the algorithm follows the key,
never the token's header, so ``alg: none`` and HS256-signed-with-the-public-key are refused.
``exp`` is required, with ``AUTH_JWT_LEEWAY_SECONDS`` of clock skew; ``iss`` and ``aud`` are
checked when configured. A token verified once is kept by its exact bytes (bounded, until
its ``exp``, at most CACHE_SECONDS), so a client's repeated calls do not pay the signature
check each time.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.types import Scope

from api.contract import Field, Gate, Security
from api.problems import ApiError, Headers
from engine.config import Settings
from engine.errors import StoreUnavailable
from engine.ids import Token, has_token_key, parse_token

CHARGE_SCOPE = "points:charge"
QUEUE_HEADER = "X-Queue-Token"
CACHE_SECONDS = 60.0  # a verified token's entry lives at most this long (then verified again)

_ASK: Headers = [(b"www-authenticate", b"Bearer")]
_INVALID: Headers = [(b"www-authenticate", b'Bearer error="invalid_token"')]


# --- the queue token ------------------------------------------------------------------------
def _queue_token(raw: bytes, where: str) -> Token:
    if not has_token_key():  # this worker has not read the deployment's key yet (api/app.py)
        raise StoreUnavailable("the queue token key is not read from Redis yet")
    parsed = parse_token(raw.strip().decode("latin-1")) if len(raw) <= 128 else None
    if parsed is None:
        raise ApiError(401, "TOKEN_UNKNOWN", f"A queue token is required in {where}.",
                       "Unauthorized")
    return parsed


def open_queue_token(scope: Scope) -> Token:
    """Open mode: ``X-Queue-Token`` or ``Authorization`` (bare or ``Bearer <token>``, the
    report's header). Both given must name the same token: a request that carries a bad
    credential is refused, whatever else it carries."""
    header = auth = None
    for k, v in scope["headers"]:
        if k == b"x-queue-token":
            header = v
        elif k == b"authorization" and auth is None:
            auth = v
    if auth is not None and auth[:7].lower() == b"bearer ":
        auth = auth[7:]
    if header is None:
        return _queue_token(auth or b"", "Authorization or X-Queue-Token")
    tok = _queue_token(header, "X-Queue-Token or Authorization")
    if auth is not None and _queue_token(auth, "Authorization") != tok:
        raise ApiError(401, "TOKEN_UNKNOWN", "X-Queue-Token and Authorization name different "
                       "queue tokens.", "Unauthorized")
    return tok


def jwt_queue_token(scope: Scope) -> Token:
    """JWT mode: ``X-Queue-Token`` only (Authorization carries the JWT)."""
    for k, v in scope["headers"]:
        if k == b"x-queue-token":
            return _queue_token(v, "X-Queue-Token")
    return _queue_token(b"", "X-Queue-Token")


# --- JWTs -----------------------------------------------------------------------------------
class Claims(NamedTuple):
    sub: str | None
    scopes: frozenset[str]
    until: float  # epoch seconds: past this the token is verified again (its exp + leeway)


def _key(s: Settings) -> tuple[Any, str]:
    """The verification key and the one algorithm it allows."""
    if s.auth_jwt_secret:
        return s.auth_jwt_secret.encode(), "HS256"
    try:
        key = serialization.load_pem_public_key(s.auth_jwt_public_key.encode())
    except ValueError as e:
        raise ValueError(f"AUTH_JWT_PUBLIC_KEY is not a PEM public key: {e}") from e
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("AUTH_JWT_PUBLIC_KEY: an RSA key needs at least 2048 bits")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ValueError("AUTH_JWT_PUBLIC_KEY must be an RSA key (RS256) or an EC P-256 key (ES256)")


def _refused(detail: str) -> ApiError:
    return ApiError(401, "AUTH_INVALID", detail, "Unauthorized", _INVALID)


class JwtVerifier:
    """Bearer JWTs from ``Authorization``, verified against the configured key."""

    def __init__(self, s: Settings) -> None:
        self.key, self.algorithm = _key(s)
        self.issuer = s.auth_jwt_issuer or None
        self.audience = s.auth_jwt_audience or None
        self.leeway = s.auth_jwt_leeway_seconds
        self.cache_size = s.auth_jwt_cache_size
        self.cache: dict[bytes, Claims] = {}

    def claims(self, scope: Scope) -> Claims:
        raw = b""
        for k, v in scope["headers"]:
            if k == b"authorization":
                raw = v
                break
        if raw[:7].lower() != b"bearer " or not raw[7:].strip():
            raise ApiError(401, "AUTH_REQUIRED", "Authorization: Bearer <JWT> is required.",
                           "Unauthorized", _ASK)
        token = raw[7:].strip()
        now = time.time()
        hit = self.cache.get(token)
        if hit is not None and now < hit.until:
            return hit
        claims = self.verify(token, now)
        if self.cache_size:
            if len(self.cache) >= self.cache_size:
                self.cache.clear()  # bounded; evicting one at a time buys little over this
            self.cache[token] = claims
        return claims

    def verify(self, token: bytes, now: float) -> Claims:
        try:
            payload = jwt.decode(token, self.key, algorithms=[self.algorithm],
                                 issuer=self.issuer, audience=self.audience, leeway=self.leeway,
                                 options={"require": ["exp"]})
        except jwt.InvalidTokenError as e:
            raise _refused(f"The bearer token was refused: {e}.") from None
        sub, scope = payload.get("sub"), payload.get("scope", "")
        if sub is not None and type(sub) is not str:
            raise _refused("The bearer token's 'sub' must be a string.")
        if type(scope) is not str:
            raise _refused("The bearer token's 'scope' must be a space-separated string.")
        until = min(float(payload["exp"]) + self.leeway, now + CACHE_SECONDS)
        return Claims(sub, frozenset(scope.split()), until)


class Auth:
    """The running mode: how the queue token is read, and the JWT verifier in jwt mode. Built
    at start-up, so that a key that cannot work stops the start (ValueError)."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth_mode
        self.jwt = JwtVerifier(settings) if self.mode == "jwt" else None
        self.queue_token = jwt_queue_token if self.jwt else open_queue_token


# --- the three securities of the public API -------------------------------------------------
JWT_SCHEME = {"bearerJwt": {
    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    "description": "A JWT from your identity provider (HS256, RS256 or ES256 as configured; "
                   "exp required). A customer's token has sub = the customer id; the payment "
                   f"back end's has the scope {CHARGE_SCOPE}."}}


class _QueueGate:
    passes = True
    authorize = None  # the engine checks the token against Redis

    def __init__(self, read: Any) -> None:
        self.authenticate = read


class QueueTokenSecurity(Security):
    """The queue token names the concert and the customer (``active``: it must be ACTIVE,
    which the engine checks: 403 TOKEN_WAITING). The handler gets the Token first."""

    def __init__(self, *, active: bool) -> None:
        self.active = active

    def schemes(self, auth: Auth) -> dict[str, dict]:
        s = {"queueToken": {
            "type": "apiKey", "in": "header", "name": QUEUE_HEADER,
            "description": "The tokenValue from POST /api/token/issue."}}
        if auth.mode == "open":
            s["queueTokenBearer"] = {
                "type": "http", "scheme": "bearer",
                "description": "Open mode: the tokenValue in Authorization, as `Bearer <token>` "
                               "or bare (the report's header)."}
        return s

    def requirement(self, auth: Auth) -> list[dict[str, list[str]]]:
        return [{"queueToken": []}] + ([{"queueTokenBearer": []}] if auth.mode == "open" else [])

    def codes(self, auth: Auth) -> tuple[str, ...]:
        return ("TOKEN_UNKNOWN", "TOKEN_WAITING") if self.active else ("TOKEN_UNKNOWN",)

    def gate(self, auth: Auth, inputs: tuple[Field, ...]) -> Gate:
        return _QueueGate(auth.queue_token)


class _CustomerGate:
    passes = False

    def __init__(self, verifier: JwtVerifier, index: int) -> None:
        self.authenticate = verifier.claims
        self.index = index

    def authorize(self, claims: Claims, values: list) -> None:
        customer = values[self.index]
        if claims.sub != str(customer):
            raise ApiError(403, "FORBIDDEN_CUSTOMER",
                           f"The bearer token is not customer {customer}'s (its sub is "
                           f"{claims.sub!r}).", "Forbidden")


class CustomerSecurity(Security):
    """jwt mode: the bearer JWT's ``sub`` must be the customer that input ``name`` names."""

    def __init__(self, name: str = "customerId") -> None:
        self.name = name

    def schemes(self, auth: Auth) -> dict[str, dict]:
        return JWT_SCHEME if auth.jwt else {}

    def requirement(self, auth: Auth) -> list[dict[str, list[str]]] | None:
        return [{"bearerJwt": []}] if auth.jwt else None

    def codes(self, auth: Auth) -> tuple[str, ...]:
        return ("AUTH_REQUIRED", "AUTH_INVALID", "FORBIDDEN_CUSTOMER") if auth.jwt else ()

    def gate(self, auth: Auth, inputs: tuple[Field, ...]) -> Gate | None:
        if auth.jwt is None:
            return None
        index = [f.name for f in inputs].index(self.name)
        return _CustomerGate(auth.jwt, index)


class _ScopeGate:
    passes = False

    def __init__(self, verifier: JwtVerifier, scope: str) -> None:
        self.authenticate = verifier.claims
        self.scope = scope
        self.headers: Headers = [(b"www-authenticate",
                                  f'Bearer error="insufficient_scope", scope="{scope}"'.encode())]

    def authorize(self, claims: Claims, values: list) -> None:
        if self.scope not in claims.scopes:
            raise ApiError(403, "FORBIDDEN_SCOPE",
                           f"The bearer token lacks the scope {self.scope}.", "Forbidden",
                           self.headers)


class ScopeSecurity(Security):
    """jwt mode: the bearer JWT's ``scope`` claim must include ``scope``."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def schemes(self, auth: Auth) -> dict[str, dict]:
        return JWT_SCHEME if auth.jwt else {}

    def requirement(self, auth: Auth) -> list[dict[str, list[str]]] | None:
        return [{"bearerJwt": [self.scope]}] if auth.jwt else None

    def codes(self, auth: Auth) -> tuple[str, ...]:
        return ("AUTH_REQUIRED", "AUTH_INVALID", "FORBIDDEN_SCOPE") if auth.jwt else ()

    def gate(self, auth: Auth, inputs: tuple[Field, ...]) -> Gate | None:
        return _ScopeGate(auth.jwt, self.scope) if auth.jwt else None


QUEUE = QueueTokenSecurity(active=False)  # any live token (its status)
ACTIVE = QueueTokenSecurity(active=True)
CUSTOMER = CustomerSecurity("customerId")
CHARGE = ScopeSecurity(CHARGE_SCOPE)
