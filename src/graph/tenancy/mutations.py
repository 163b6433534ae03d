"""Tenancy mutations: each translates its input, calls one domain service, and returns a
payload with the result or typed errors."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID

from domain.tenancy import api_keys, brands, members, settings
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given
from graph.tenancy.types import ApiKey, Brand, Member, Role


@strawberry.input
class BrandVoiceInput:
    tone: str | None = UNSET
    style_guide: str | None = UNSET
    words_to_use: list[str] | None = UNSET
    words_to_avoid: list[str] | None = UNSET
    sample_copy: str | None = UNSET

    def to_fields(self) -> dict[str, Any]:
        return given(
            voice_tone=self.tone, voice_style_guide=self.style_guide,
            voice_words_to_use=self.words_to_use, voice_words_to_avoid=self.words_to_avoid,
            voice_sample_copy=self.sample_copy,
        )


@strawberry.input
class CreateBrandInput:
    name: str
    slug: str
    timezone: str | None = UNSET
    from_name: str | None = UNSET
    from_email: str | None = UNSET
    reply_to: str | None = UNSET
    sms_sender: str | None = UNSET
    voice: BrandVoiceInput | None = UNSET


@strawberry.input
class UpdateBrandInput:
    id: GlobalID
    name: str | None = UNSET
    slug: str | None = UNSET
    timezone: str | None = UNSET
    from_name: str | None = UNSET
    from_email: str | None = UNSET
    reply_to: str | None = UNSET
    sms_sender: str | None = UNSET
    segment_refresh_hours: int | None = strawberry.field(default=UNSET, description=(
        "Every rule-based segment of the brand is refreshed whole at least this often (1 to 168 hours), a backstop "
        "behind live evaluation."))


@strawberry.input
class UpdateBrandVoiceInput(BrandVoiceInput):
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.input
class ArchiveBrandInput:
    id: GlobalID


@strawberry.input
class ChangeMemberRoleInput:
    user_id: GlobalID
    role: Role


@strawberry.input
class RemoveMemberInput:
    user_id: GlobalID


@strawberry.input
class BrandAccessInput:
    user_id: GlobalID
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.input
class RevokeApiKeyInput:
    id: GlobalID


@strawberry.input
class AddMemberInput:
    email: str
    role: Role
    name: str | None = UNSET
    brand_ids: list[GlobalID] | None = strawberry.field(
        default=UNSET, description="Limit the member to these brands; omit for every brand."
    )


@strawberry.input
class CreateApiKeyInput:
    name: str
    role: Role
    brand_ids: list[GlobalID] | None = strawberry.field(
        default=UNSET, description="Limit the key to these brands; omit for every brand you see."
    )
    client_app_id: GlobalID | None = strawberry.field(
        default=UNSET, description="The client app the key belongs to; omit for none.")


@strawberry.type
class BrandPayload:
    brand: Brand | None = None
    errors: list[UserError]


@strawberry.type
class MemberPayload:
    member: Member | None = None
    errors: list[UserError]


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None = None
    errors: list[UserError]


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(
        default=None, description="The key itself. Shown this once; only its hash is kept."
    )
    errors: list[UserError]


def _brand_ids(given: list[GlobalID] | None) -> list | None:
    """None (every brand) when the field was left out or null; else the listed brands."""
    if given is UNSET or given is None:
        return None
    return ids.decode_many(given, "Brand", "brandIds")


def _brand(b: Any) -> dict[str, Any]:
    return {"brand": Brand.from_model(b)}


def _member(m: Any) -> dict[str, Any]:
    return {"member": Member.from_model(m)}


@strawberry.type
class TenancyMutation:
    @strawberry.mutation
    async def create_brand(self, info: Info, input: CreateBrandInput) -> BrandPayload:
        async def run():
            fields = given(
                name=input.name, slug=input.slug, timezone=input.timezone,
                from_name=input.from_name, from_email=input.from_email,
                reply_to=input.reply_to, sms_sender=input.sms_sender,
            )
            if input.voice:
                fields |= input.voice.to_fields()
            return await brands.create_brand(info.context.principal, fields)

        return await payload(BrandPayload, run, _brand)

    @strawberry.mutation
    async def update_brand(self, info: Info, input: UpdateBrandInput) -> BrandPayload:
        async def run():
            changes = given(
                name=input.name, slug=input.slug, timezone=input.timezone,
                from_name=input.from_name, from_email=input.from_email,
                reply_to=input.reply_to, sms_sender=input.sms_sender,
                segment_refresh_hours=input.segment_refresh_hours,
            )
            return await brands.update_brand(info.context.principal, ids.decode(input.id, "Brand"), changes)

        return await payload(BrandPayload, run, _brand)

    @strawberry.mutation
    async def update_brand_voice(self, info: Info, input: UpdateBrandVoiceInput) -> BrandPayload:
        async def run():
            brand_id = inputs.brand(info, input.brand_id)
            return await brands.update_brand_voice(info.context.principal, brand_id, input.to_fields())

        return await payload(BrandPayload, run, _brand)

    @strawberry.mutation
    async def archive_brand(self, info: Info, input: ArchiveBrandInput) -> BrandPayload:
        async def run():
            return await brands.archive_brand(info.context.principal, ids.decode(input.id, "Brand"))

        return await payload(BrandPayload, run, _brand)

    @strawberry.mutation(description="Invite a person by e-mail. The member is INVITED and may do nothing "
                                     "until they accept (acceptInvitation); the answer holds only what was given.")
    async def add_member(self, info: Info, input: AddMemberInput) -> MemberPayload:
        async def run():
            brand_ids = _brand_ids(input.brand_ids)
            return await members.add_member(
                info.context.principal, input.email, input.role.value,
                name=input.name or None, brand_ids=brand_ids,
            )

        return await payload(MemberPayload, run, _member)

    @strawberry.mutation(description="The caller accepts the invitation of the tenant their credential names; "
                                     "the role and brands apply at once, to the rest of this request too.")
    async def accept_invitation(self, info: Info) -> MemberPayload:
        async def run():
            member = await members.accept_invitation(info.context.principal)
            accepted = await members.principal_for_user(info.context.principal.tenant_id, member.user_id)
            if accepted is not None:  # the payload (and what follows) reads as the member now is
                info.context.principal_ = accepted
                info.context.fresh_loaders()
            return member

        return await payload(MemberPayload, run, _member, prefix=None)

    @strawberry.mutation
    async def change_member_role(self, info: Info, input: ChangeMemberRoleInput) -> MemberPayload:
        async def run():
            return await members.change_member_role(
                info.context.principal, ids.decode(input.user_id, "Member", "userId"), input.role.value
            )

        return await payload(MemberPayload, run, _member)

    @strawberry.mutation
    async def remove_member(self, info: Info, input: RemoveMemberInput) -> MemberPayload:
        async def run():
            return await members.remove_member(info.context.principal, ids.decode(input.user_id, "Member", "userId"))

        return await payload(MemberPayload, run, _member)

    @strawberry.mutation
    async def grant_brand_access(self, info: Info, input: BrandAccessInput) -> MemberPayload:
        async def run():
            return await members.grant_brand_access(
                info.context.principal, ids.decode(input.user_id, "Member", "userId"),
                inputs.brand(info, input.brand_id),
            )

        return await payload(MemberPayload, run, _member)

    @strawberry.mutation
    async def revoke_brand_access(self, info: Info, input: BrandAccessInput) -> MemberPayload:
        async def run():
            return await members.revoke_brand_access(
                info.context.principal, ids.decode(input.user_id, "Member", "userId"),
                inputs.brand(info, input.brand_id),
            )

        return await payload(MemberPayload, run, _member)

    @strawberry.mutation(description="Create an API key; the secret is in this payload only.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        async def run():
            brand_ids = _brand_ids(input.brand_ids)
            app_id = None if input.client_app_id in (UNSET, None) else ids.decode(
                input.client_app_id, "ClientApp", "clientAppId")
            return await api_keys.create_api_key(
                info.context.principal, input.name, input.role.value, brand_ids=brand_ids, client_app_id=app_id
            )

        return await payload(
            CreateApiKeyPayload, run, lambda r: {"api_key": ApiKey.from_model(r[0]), "secret": r[1]}
        )

    @strawberry.mutation
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        async def run():
            return await api_keys.revoke_api_key(info.context.principal, ids.decode(input.id, "ApiKey"))

        return await payload(ApiKeyPayload, run, lambda k: {"api_key": ApiKey.from_model(k)})


@strawberry.type
class RotateWebhookSecretPayload:
    secret: str | None = strawberry.field(
        default=None, description="The new signing secret, shown this once. Deliveries are signed with it from now on.")
    errors: list[UserError]


@strawberry.type
class TenantSettingsMutation:
    """The tenant's own settings. Merged into the schema after the automation mutations, where
    the published schema has always listed them."""

    @strawberry.mutation(description="A new webhook signing secret for the tenant, returned this once (owners and admins).")
    async def rotate_webhook_secret(self, info: Info) -> RotateWebhookSecretPayload:
        return await payload(RotateWebhookSecretPayload, lambda: settings.rotate_webhook_secret(info.context.principal),
                             lambda secret: {"secret": secret}, prefix=None)
