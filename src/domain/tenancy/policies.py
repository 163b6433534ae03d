"""Who may do what: the one place that answers "may this principal do this action on this
resource". The GraphQL layer only asks; it never decides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from domain.errors import PermissionDenied
from domain.tenancy import scoping


class Role(str, Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MARKETER = "marketer"
    AGENT = "agent"
    ANALYST = "analyst"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def sees_every_brand(self) -> bool:
        return self in (Role.OWNER, Role.ADMIN)


_RANK = {Role.OWNER: 4, Role.ADMIN: 3, Role.MARKETER: 2, Role.AGENT: 1, Role.ANALYST: 0}


class Action(str, Enum):
    TENANT_READ = "tenant:read"
    BRAND_READ = "brand:read"
    BRAND_CREATE = "brand:create"
    BRAND_UPDATE = "brand:update"
    BRAND_UPDATE_VOICE = "brand:update_voice"
    BRAND_ARCHIVE = "brand:archive"
    MEMBER_READ = "member:read"
    MEMBER_MANAGE = "member:manage"
    API_KEY_MANAGE = "api_key:manage"
    AUDIT_READ = "audit:read"
    CUSTOMER_READ = "customer:read"
    CUSTOMER_WRITE = "customer:write"
    CUSTOMER_IMPORT = "customer:import"
    CUSTOMER_OVERRIDE = "customer:override"  # owners and admins: churn risk and lifetime value overrides
    COMMERCE_WRITE = "commerce:write"
    TAG_MANAGE = "tag:manage"
    TAG_ASSIGN = "tag:assign"
    NOTE_WRITE = "note:write"
    CONSENT_WRITE = "consent:write"
    PROFILE_REBUILD = "profile:rebuild"
    TIMELINE_EXPORT = "timeline:export"
    JOB_READ = "job:read"
    SEGMENT_READ = "segment:read"
    SEGMENT_WRITE = "segment:write"
    SEGMENT_REFRESH = "segment:refresh"
    AUTOMATION_MANAGE = "automation:manage"
    WEBHOOK_SECRET_ROTATE = "webhook_secret:rotate"
    CAMPAIGN_READ = "campaign:read"
    CAMPAIGN_WRITE = "campaign:write"
    CAMPAIGN_SEND = "campaign:send"
    DELIVERY_MANAGE = "delivery:manage"
    CONVERSATION_READ = "conversation:read"
    CONVERSATION_REPLY = "conversation:reply"
    CONVERSATION_MANAGE = "conversation:manage"
    CONVERSATION_LABEL_MANAGE = "conversation_label:manage"
    CANNED_RESPONSE_MANAGE = "canned_response:manage"
    CLIENT_APP_MANAGE = "client_app:manage"
    AI_SETTINGS_READ = "ai_settings:read"
    AI_SETTINGS_MANAGE = "ai_settings:manage"
    COPILOT_READ = "copilot:read"
    COPILOT_DRAFT = "copilot:draft"
    COPILOT_CAMPAIGN = "copilot:campaign"


_READ = {Action.TENANT_READ, Action.BRAND_READ, Action.CUSTOMER_READ, Action.JOB_READ, Action.SEGMENT_READ,
         Action.CAMPAIGN_READ, Action.CONVERSATION_READ, Action.AI_SETTINGS_READ, Action.COPILOT_READ}
_AGENT = _READ | {Action.CUSTOMER_WRITE, Action.TAG_ASSIGN, Action.NOTE_WRITE, Action.CONSENT_WRITE,
                  Action.CONVERSATION_REPLY, Action.CONVERSATION_MANAGE, Action.CANNED_RESPONSE_MANAGE,
                  Action.COPILOT_DRAFT}
_MARKETER = _AGENT | {
    Action.BRAND_UPDATE_VOICE, Action.CUSTOMER_IMPORT, Action.COMMERCE_WRITE, Action.TAG_MANAGE,
    Action.TIMELINE_EXPORT, Action.SEGMENT_WRITE, Action.SEGMENT_REFRESH, Action.AUTOMATION_MANAGE,
    Action.CAMPAIGN_WRITE, Action.CAMPAIGN_SEND, Action.CONVERSATION_LABEL_MANAGE, Action.COPILOT_CAMPAIGN,
}
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: frozenset(Action),
    Role.MARKETER: frozenset(_MARKETER),
    Role.AGENT: frozenset(_AGENT),
    Role.ANALYST: frozenset(_READ | {Action.TIMELINE_EXPORT}),
}


class PrincipalKind(str, Enum):
    USER = "user"
    API_KEY = "api_key"


@dataclass(frozen=True)
class ClientAppRef:
    """The client app an API key belongs to, as authentication resolved it (and the
    authentication cache keeps it): what the request path needs without another query."""

    id: uuid.UUID
    persisted_only: bool
    rate_plan: str | None


@dataclass(frozen=True)
class Principal:
    """Who is calling, for which tenant, with which role and brands."""

    tenant_id: uuid.UUID
    kind: PrincipalKind
    id: uuid.UUID
    role: Role
    label: str
    # None: every brand of the tenant. Decide with domain/tenancy/scoping.py, the brand rule.
    brand_ids: frozenset[uuid.UUID] | None
    # a person whose membership is an invitation not yet accepted: may do nothing but accept it
    invited: bool = False
    # a person's membership of this tenant (``id`` is the global user id, the same in every tenant)
    member_id: uuid.UUID | None = None
    # an API key that belongs to a client app (domain/clients): persisted-only, its rate plan
    client_app: ClientAppRef | None = None

    @property
    def tenant_facing_id(self) -> uuid.UUID:
        """The id the tenant knows the caller by: a person's member id, an API key's id."""
        return self.member_id or self.id

    @property
    def actions(self) -> frozenset[Action]:
        """What this principal may do: its role's actions, less the tenant-wide ones when it is
        limited to some brands."""
        if scoping.sees_every_brand(self):
            return ROLE_ACTIONS[self.role]
        return ROLE_ACTIONS[self.role] - TENANT_WIDE

    def may(self, action: Action) -> bool:
        return not self.invited and action in ROLE_ACTIONS[self.role]


# Actions whose effect reaches every brand at once: a principal limited to some brands may not
# take them (docs/security.md, "Tenant-wide actions"). Brands, tags and custom attribute
# declarations (tag:manage), the profile rebuild, people, keys and the webhook signing secret
# belong to the tenant, not to one brand; so do client apps (their keys and trusted documents),
# and the AI provider connections.
TENANT_WIDE = frozenset({Action.BRAND_CREATE, Action.TAG_MANAGE, Action.PROFILE_REBUILD,
                         Action.WEBHOOK_SECRET_ROTATE, Action.MEMBER_MANAGE, Action.API_KEY_MANAGE,
                         Action.CLIENT_APP_MANAGE, Action.AI_SETTINGS_MANAGE})


def authorize(principal: Principal, action: Action, *, brand_id: uuid.UUID | None = None) -> None:
    """Raise unless ``principal`` may do ``action`` (on ``brand_id``, when given).

    A brand the principal holds no grant on is reported as not found, so its existence
    does not leak.
    """
    if principal.invited:
        raise PermissionDenied("accept the invitation first (acceptInvitation)")
    if not principal.may(action):
        raise PermissionDenied(f"your role ({principal.role.value}) may not {action.value}")
    if action in TENANT_WIDE and not scoping.sees_every_brand(principal):
        raise PermissionDenied(f"{action.value} concerns every brand; a principal limited to some brands may not")
    if brand_id is not None:
        scoping.require_brand(principal, brand_id)


def authorize_role_change(principal: Principal, current: Role | None, new: Role | None) -> None:
    """Nobody hands out a role above their own; only owners touch owners."""
    authorize(principal, Action.MEMBER_MANAGE)
    for role in (current, new):
        if role is not None and role.rank > principal.role.rank:
            raise PermissionDenied(
                f"a {principal.role.value} may not grant or change the {role.value} role",
                field="role",
            )
        if role is Role.OWNER and principal.role is not Role.OWNER:
            raise PermissionDenied("only owners manage owners", field="role")
