"""The per-request (or per-websocket-connection) context every resolver receives."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import strawberry

from domain.errors import Unauthenticated
from domain.tenancy import auth
from domain.tenancy.policies import Principal
from graph.core.dataloaders import Loaders


@dataclass
class Context:
    request: Any
    response: Any
    request_id: str
    principal_: Principal | None = None
    brand_id: uuid.UUID | None = None  # the active brand (X-Brand-Id or connection_init brandId)
    connection_params: dict[str, Any] | None = None
    credential: str | None = field(default=None, repr=False)  # websockets: checked again over time
    checked_at: float = 0.0
    _loaders: Loaders | None = field(default=None, repr=False)

    RECHECK_SECONDS = 60.0

    @property
    def principal(self) -> Principal:
        if self.principal_ is None:
            raise Unauthenticated()
        return self.principal_

    @property
    def loaders(self) -> Loaders:
        """Per-request dataloaders. Over a websocket, each subscription event makes new ones."""
        if self._loaders is None:
            self._loaders = Loaders.for_principal(self.principal)
        return self._loaders

    async def recheck(self) -> None:
        """For long-lived subscriptions: authenticate the connection's credential again (at most
        once a minute), so a revoked key, a removed member or an expired token stops receiving."""
        if self.credential is None or time.monotonic() - self.checked_at < self.RECHECK_SECONDS:
            return
        principal = await auth.authenticate(self.credential)
        if principal.tenant_id != self.principal.tenant_id:
            raise Unauthenticated("credential changed tenant")
        self.principal_ = principal
        self.checked_at = time.monotonic()

    def fresh_loaders(self) -> Loaders:
        self._loaders = Loaders.for_principal(self.principal)
        return self._loaders


Info = strawberry.Info[Context, None]
