"""Process settings, read once from the environment.

Every variable is listed in the README's table; keep the two in step.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

APP_ROLE = "brandgraph_app"


class ConfigError(RuntimeError):
    """A setting is missing or inconsistent; raised at start-up, never later."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _regex(name: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{name} is not a regular expression: {exc}") from None
    return value


def project_root() -> Path:
    """Folder holding alembic.ini, alembic/ and migrations/."""
    env = os.environ.get("BRANDGRAPH_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "alembic.ini").exists():
            return parent
    return Path.cwd()


def with_user(url: str, user: str, password: str | None) -> str:
    """The same database URL, logging in as another role."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    cred = quote(user, safe="")
    if password:
        cred += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{cred}@{host}"))


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def asyncpg_url(url: str) -> str:
    """SQLAlchemy URL for the asyncpg driver from a plain postgresql:// URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str | None = None  # owner: migrations and provisioning
    database_app_url: str | None = None  # runtime role, subject to row-level security
    database_app_password: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".brandgraph")
    secret_key: str | None = None
    encryption_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "brandgraph"
    jwt_audience: str = "brandgraph-api"
    jwt_tenant_claim: str = "tid"
    cors_origins: tuple[str, ...] = ()
    cors_origin_regex: str | None = None  # `brandgraph dev` sets local SPA origins when neither is set
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 52_428_800
    max_concurrent_requests: int = 100
    introspection: bool = True
    graphiql: bool = True
    max_query_depth: int = 12
    max_query_tokens: int = 4000
    max_aliases: int = 30
    apq_ttl_seconds: int = 86_400
    apq_max_query_bytes: int = 32_768
    throttling: bool = True  # API_THROTTLING: query cost limits and the leaky bucket (graph/cost.py)
    log_level: str = "INFO"
    audit_retention_days: int = 365
    db_pool_size: int = 10
    sql_stats: bool = False
    auth_cache_seconds: int = 30
    segment_manual_refresh_seconds: int = 60
    segment_auto_refresh_seconds: int = 3600
    live_segment_debounce_ms: int = 100
    public_url: str = "http://localhost:8000"
    brevo_api_url: str = "https://api.brevo.com"
    sendgrid_api_url: str = "https://api.sendgrid.com"
    twilio_api_url: str = "https://api.twilio.com"
    fcm_api_url: str = "https://fcm.googleapis.com"
    fcm_token_url: str = "https://oauth2.googleapis.com/token"
    campaign_batch_size: int = 500
    openai_api_url: str = "https://api.openai.com"
    anthropic_api_url: str = "https://api.anthropic.com"
    perplexity_api_url: str = "https://api.perplexity.ai"
    jasper_api_url: str = "https://api.jasper.ai"
    canva_api_url: str = "https://api.canva.com"
    canva_client_id: str | None = None
    canva_client_secret: str | None = None
    ai_endpoints: str | None = None  # JSON: operator-declared OpenAI-compatible endpoints
    ai_timeout_seconds: float = 60.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_database(self) -> bool:
        return not self.database_url and not self.database_app_url

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    def app_password(self) -> str | None:
        """DATABASE_APP_PASSWORD, or outside production one derived from the secret key (so no
        two installations share a known password)."""
        if self.database_app_password or self.production:
            return self.database_app_password
        if not self.secret_key:
            return None

        return hmac.new(self.secret_key.encode(), b"brandgraph_app-password", hashlib.sha256).hexdigest()[:32]

    def app_database_url(self) -> str:
        """URL the API and workers connect with: a role that cannot bypass RLS."""
        if self.database_app_url:
            return self.database_app_url
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (and no embedded database was started)")
        return with_user(self.database_url, APP_ROLE, self.app_password())

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise ConfigError("BRANDGRAPH_SECRET_KEY is not set (it signs tokens and links)")
        return self.secret_key

    def owner_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL (the schema owner, used for migrations) is not set")
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (and no embedded Redis was started)")
        return self.redis_url

    def check_production(self, *, redis: bool = True, secret: bool = True) -> None:
        """In production nothing is started implicitly and nothing insecure is defaulted.
        ``redis`` and ``secret`` say whether the command needs them (migrate needs neither)."""
        if not self.production:
            return
        missing = []
        if not self.database_url and not self.database_app_url:
            missing.append("DATABASE_URL")
        if redis and not self.redis_url:
            missing.append("REDIS_URL")
        if secret and not self.secret_key:
            missing.append("BRANDGRAPH_SECRET_KEY")
        if missing:
            raise ConfigError(
                "BRANDGRAPH_ENV=production needs "
                + ", ".join(missing)
                + ": embedded services and development secrets are never used in production"
            )
        if not self.database_app_url and not self.database_app_password:
            raise ConfigError(
                "BRANDGRAPH_ENV=production needs DATABASE_APP_URL or DATABASE_APP_PASSWORD "
                f"for the {APP_ROLE} role"
            )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    e = os.environ if environ is None else environ
    env = e.get("BRANDGRAPH_ENV", "development").strip().lower()
    production = env == "production"
    return Settings(
        env=env,
        database_url=e.get("DATABASE_URL") or None,
        database_app_url=e.get("DATABASE_APP_URL") or None,
        database_app_password=e.get("DATABASE_APP_PASSWORD") or None,
        redis_url=e.get("REDIS_URL") or None,
        data_dir=Path(e.get("BRANDGRAPH_DATA_DIR") or ".brandgraph"),
        secret_key=e.get("BRANDGRAPH_SECRET_KEY") or None,
        encryption_key=e.get("BRANDGRAPH_ENCRYPTION_KEY") or None,
        jwt_algorithms=_list(e.get("JWT_ALGORITHMS")) or ("HS256",),
        jwt_public_key=e.get("JWT_PUBLIC_KEY") or None,
        jwt_jwks_url=e.get("JWT_JWKS_URL") or None,
        jwt_issuer=e.get("JWT_ISSUER") or "brandgraph",
        jwt_audience=e.get("JWT_AUDIENCE") or "brandgraph-api",
        jwt_tenant_claim=e.get("JWT_TENANT_CLAIM") or "tid",
        cors_origins=_list(e.get("CORS_ORIGINS")),
        cors_origin_regex=_regex("CORS_ORIGIN_REGEX", e.get("CORS_ORIGIN_REGEX")),
        max_body_bytes=int(e.get("MAX_BODY_BYTES") or 1_048_576),
        max_upload_bytes=int(e.get("MAX_UPLOAD_BYTES") or 52_428_800),
        max_concurrent_requests=max(1, int(e.get("MAX_CONCURRENT_REQUESTS") or 100)),
        introspection=_bool(e.get("GRAPHQL_INTROSPECTION"), not production),
        graphiql=_bool(e.get("GRAPHIQL"), not production),
        max_query_depth=int(e.get("GRAPHQL_MAX_DEPTH") or 12),
        max_query_tokens=int(e.get("GRAPHQL_MAX_TOKENS") or 4000),
        max_aliases=int(e.get("GRAPHQL_MAX_ALIASES") or 30),
        apq_ttl_seconds=int(e.get("APQ_TTL_SECONDS") or 86_400),
        apq_max_query_bytes=int(e.get("APQ_MAX_QUERY_BYTES") or 32_768),
        throttling=_bool(e.get("API_THROTTLING"), True),
        log_level=(e.get("LOG_LEVEL") or "INFO").upper(),
        audit_retention_days=int(e.get("AUDIT_RETENTION_DAYS") or 365),
        db_pool_size=int(e.get("DATABASE_POOL_SIZE") or 10),
        sql_stats=_bool(e.get("GRAPHQL_SQL_STATS"), False) and not production,
        auth_cache_seconds=int(e.get("AUTH_CACHE_SECONDS") or 30),
        segment_manual_refresh_seconds=int(e.get("SEGMENT_MANUAL_REFRESH_SECONDS") or 60),
        segment_auto_refresh_seconds=int(e.get("SEGMENT_AUTO_REFRESH_SECONDS") or 3600),
        live_segment_debounce_ms=int(e.get("LIVE_SEGMENT_DEBOUNCE_MS") or 100),
        public_url=(e.get("PUBLIC_URL") or "http://localhost:8000").rstrip("/"),
        brevo_api_url=(e.get("BREVO_API_URL") or "https://api.brevo.com").rstrip("/"),
        sendgrid_api_url=(e.get("SENDGRID_API_URL") or "https://api.sendgrid.com").rstrip("/"),
        twilio_api_url=(e.get("TWILIO_API_URL") or "https://api.twilio.com").rstrip("/"),
        fcm_api_url=(e.get("FCM_API_URL") or "https://fcm.googleapis.com").rstrip("/"),
        fcm_token_url=e.get("FCM_TOKEN_URL") or "https://oauth2.googleapis.com/token",
        campaign_batch_size=int(e.get("CAMPAIGN_BATCH_SIZE") or 500),
        openai_api_url=(e.get("OPENAI_API_URL") or "https://api.openai.com").rstrip("/"),
        anthropic_api_url=(e.get("ANTHROPIC_API_URL") or "https://api.anthropic.com").rstrip("/"),
        perplexity_api_url=(e.get("PERPLEXITY_API_URL") or "https://api.perplexity.ai").rstrip("/"),
        jasper_api_url=(e.get("JASPER_API_URL") or "https://api.jasper.ai").rstrip("/"),
        canva_api_url=(e.get("CANVA_API_URL") or "https://api.canva.com").rstrip("/"),
        canva_client_id=e.get("CANVA_CLIENT_ID") or None,
        canva_client_secret=e.get("CANVA_CLIENT_SECRET") or None,
        ai_endpoints=e.get("AI_ENDPOINTS") or None,
        ai_timeout_seconds=float(e.get("AI_TIMEOUT_SECONDS") or 60),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
