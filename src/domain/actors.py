"""Every Dramatiq actor of the product, in one place (the worker, the scheduler and tests load
them through :func:`load_actors`)."""

from __future__ import annotations

import importlib

from domain.platform.broker import broker  # noqa: F401  (sets the global broker before any actor)

ACTOR_MODULES = (
    "domain.ai.design",
    "domain.ai.runs",
    "domain.audit.actors",
    "domain.automations.running",
    "domain.automations.webhooks",
    "domain.campaigns.sending",
    "domain.conversations.sending",
    "domain.exports.timeline",
    "domain.imports.actors",
    "domain.offers.stored",
    "domain.profiles.actors",
    "domain.segments.changes",
    "domain.segments.live",
    "domain.segments.member_import",
    "domain.segments.refresh",
    "domain.tenancy.actors",
)


def load_actors() -> None:
    for name in ACTOR_MODULES:
        importlib.import_module(name)
