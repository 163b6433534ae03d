"""Credentials to principals: API keys for integrations, JWTs for SPA users.

JWTs are HS256 with ``BRANDGRAPH_SECRET_KEY``, or RS256/ES256 against ``JWT_PUBLIC_KEY`` or a
JWKS URL; issuer, audience and expiry are always checked. A token Brandgraph signed (HS256) names
its user by ``sub``; an outside provider's token (RS/ES) is matched by its verified e-mail only,
never by ``sub``, whatever it holds. The tenant comes from the token's tenant claim; the role and brands come from the membership.

What a credential resolves to is kept briefly in :mod:`domain.tenancy.principal_cache` (a JWT's
no longer than its ``exp``): a change to the membership or the key takes effect at once on the
process that made it, and within a second on every other API process.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from functools import lru_cache

import jwt

from domain.config import get_settings
from domain.errors import Unauthenticated
from domain.tenancy import api_keys, members
from domain.tenancy.policies import Principal
from domain.tenancy.principal_cache import cache, credential_key

DEV_TOKEN_TTL = 30 * 24 * 3600


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300)


async def _verification_key(token: str) -> object:
    settings = get_settings()
    header = jwt.get_unverified_header(token)
    alg = header.get("alg")
    if alg not in settings.jwt_algorithms:
        raise Unauthenticated(f"token algorithm {alg!r} is not accepted")
    if alg.startswith("HS"):
        return settings.require_secret_key()
    if settings.jwt_jwks_url:
        client = _jwks_client(settings.jwt_jwks_url)
        signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        return signing_key.key
    if settings.jwt_public_key:
        return settings.jwt_public_key
    raise Unauthenticated(f"no key is configured for {alg} tokens")


async def authenticate_jwt(token: str) -> Principal:
    return (await _authenticate_jwt(token))[0]


async def _authenticate_jwt(token: str) -> tuple[Principal, float]:
    """The token's principal and its expiry (``exp``, seconds since the epoch)."""
    settings = get_settings()
    try:
        key = await _verification_key(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired") from None
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None
    try:
        tenant_id = uuid.UUID(str(claims[settings.jwt_tenant_claim]))
    except (KeyError, ValueError):
        raise Unauthenticated(f"token has no valid {settings.jwt_tenant_claim!r} claim") from None
    outside = not str(jwt.get_unverified_header(token).get("alg", "")).startswith("HS")
    principal = None
    user_id = None
    if not outside:  # only a token Brandgraph signed itself names a Brandgraph user by its subject
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError:
            user_id = None
    if user_id is not None:
        principal = await members.principal_for_user(tenant_id, user_id)
    if principal is None:  # an outside identity provider's subject: match on the e-mail claim only
        email = claims.get("email")
        if not email:
            if user_id is not None:
                raise Unauthenticated("not a member of this tenant")
            raise Unauthenticated("token subject is not a Brandgraph user and has no email claim")
        check_email_verified(claims, outside)
        principal = await members.principal_for_user(tenant_id, None, email=str(email))
    if principal is None:
        raise Unauthenticated("not a member of this tenant")
    return principal, float(claims["exp"])


def check_email_verified(claims: dict, outside: bool) -> None:
    """A person is matched by the token's e-mail only when the issuer vouches for it: never with
    ``email_verified`` false, and, from an outside identity provider (an asymmetric token), only
    with ``email_verified`` true. Otherwise anyone who registers an address with the provider
    would take over (or accept the invitation of) the member who holds it."""
    verified = claims.get("email_verified")
    if isinstance(verified, str):
        verified = {"true": True, "false": False}.get(verified.strip().lower(), verified)
    if verified is False or (outside and verified is not True):
        raise Unauthenticated("the token's email is not verified (email_verified must be true)")


async def authenticate(authorization: str | None) -> Principal:
    """The principal for an ``Authorization`` header value (or a websocket's token)."""
    if not authorization:
        raise Unauthenticated("authentication required: send Authorization: Bearer <API key or token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use Authorization: Bearer <API key or token>")
    token = token.strip()
    key = credential_key(token)
    found = cache.principal(key)
    if found is not None:
        return found
    generation = cache.generation  # a change announced from now on keeps what is read below out
    expires_at = None
    if api_keys.looks_like_api_key(token):
        principal = await api_keys.authenticate(token)
    else:
        principal, expires_at = await _authenticate_jwt(token)
    cache.put_principal(key, principal, generation, expires_at=expires_at)
    return principal


def mint_token(tenant_id: uuid.UUID, user_id: uuid.UUID, email: str, *, ttl: int = DEV_TOKEN_TTL) -> str:
    """An HS256 token signed with the server's secret (development and the CLI)."""
    settings = get_settings()
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "email": email,
        settings.jwt_tenant_claim: str(tenant_id),
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, settings.require_secret_key(), algorithm="HS256")
