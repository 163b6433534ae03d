"""Which models the copilot offers: ``models.toml`` (the one configuration file), merged with a
provider's live model list (kept on the connection by its last successful test), and the
OpenAI-compatible endpoints the operator declares in ``AI_ENDPOINTS``.

``AI_ENDPOINTS`` is a JSON list: ``[{"name": "local-llama", "base_url": "http://llm:8000/v1",
"models": ["llama-3.1-8b"], "api_key_env": "LOCAL_LLM_KEY"}]``. Tenants choose an endpoint by its
name (``endpoint:local-llama``); they never give a base URL, so tenant input cannot make the server
call an address of its choosing. ``api_key_env`` names the environment variable holding the
endpoint's key (optional).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from domain.ai.models import Feature, Provider
from domain.config import ConfigError, get_settings

MODELS_FILE = Path(__file__).with_name("models.toml")
ENDPOINT_PREFIX = "endpoint:"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    context_window: int | None = None
    price_in: float | None = None  # US dollars per million tokens
    price_out: float | None = None
    features: tuple[Feature, ...] = ()
    configured: bool = True  # from models.toml (False: only in the provider's live list)

    def cost_micro_usd(self, tokens_in: int, tokens_out: int) -> int | None:
        """Estimated cost in millionths of a dollar."""
        if self.price_in is None or self.price_out is None:
            return None
        return round(tokens_in * self.price_in + tokens_out * self.price_out)


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    models: tuple[str, ...]
    api_key_env: str | None = None

    @property
    def key(self) -> str:
        return ENDPOINT_PREFIX + self.name

    def api_key(self) -> str:
        return (os.environ.get(self.api_key_env) if self.api_key_env else None) or "none"


@lru_cache(maxsize=1)
def configured_models() -> dict[Provider, tuple[ModelInfo, ...]]:
    data = tomllib.loads(MODELS_FILE.read_text())
    out: dict[Provider, tuple[ModelInfo, ...]] = {}
    for provider in Provider:
        rows = data.get(provider.value, [])
        out[provider] = tuple(
            ModelInfo(id=r["id"], name=r["name"], context_window=r.get("context_window"),
                      price_in=r.get("price_in"), price_out=r.get("price_out"),
                      features=tuple(Feature(f) for f in r.get("features", ())))
            for r in rows)
    return out


def models_for(provider: Provider, live: list[str] | None = None) -> list[ModelInfo]:
    """The configured models, then the live ones the file does not name."""
    known = list(configured_models()[provider])
    ids = {m.id for m in known}
    for model_id in live or ():
        if model_id not in ids:
            known.append(ModelInfo(id=model_id, name=model_id, configured=False))
            ids.add(model_id)
    return known


def default_model(provider: Provider) -> str | None:
    models = configured_models()[provider]
    return models[0].id if models else None


def model_info(provider: str, model: str) -> ModelInfo | None:
    try:
        p = Provider(provider)
    except ValueError:
        return None
    return next((m for m in configured_models()[p] if m.id == model), None)


@lru_cache(maxsize=4)
def _parse_endpoints(raw: str | None) -> tuple[Endpoint, ...]:
    if not raw:
        return ()
    try:
        items = json.loads(raw)
        return tuple(Endpoint(name=str(i["name"]), base_url=str(i["base_url"]).rstrip("/"),
                              models=tuple(str(m) for m in i.get("models", ())), api_key_env=i.get("api_key_env"))
                     for i in items)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"AI_ENDPOINTS is not a JSON list of {{name, base_url, models}}: {exc}") from None


def endpoints() -> tuple[Endpoint, ...]:
    return _parse_endpoints(get_settings().ai_endpoints)


def endpoint(name: str) -> Endpoint | None:
    return next((e for e in endpoints() if e.name == name), None)
