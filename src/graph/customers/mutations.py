"""Customer mutations: upsert, tags, notes, consent."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.file_uploads import Upload
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.customers import consent, notes, overrides, service, tags
from domain.customers.consent import Channel as DomainChannel
from domain.customers.notes import NoteType as DomainNoteType
from domain.customers.notes import NoteVisibility as DomainNoteVisibility
from domain.imports.actors import start_customer_import
from domain.profiles.actors import start_rebuild
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given
from graph.core.scalars import BigInt
from graph.customers.types import (
    Channel,
    Consent,
    ContactMethod,
    Customer,
    Note,
    NoteType,
    NoteVisibility,
    Tag,
)
from graph.jobs.types import JobPayload, job_result, upload_job


@strawberry.input(description="Customer fields; only those sent change (null clears).")
class CustomerFieldsInput:
    external_id: str | None = UNSET
    email: str | None = UNSET
    phone: str | None = strawberry.field(default=UNSET, description="E.164, for example +33612345678.")
    push_token: str | None = strawberry.field(default=UNSET, description="The device's push registration token.")
    first_name: str | None = UNSET
    last_name: str | None = UNSET
    company: str | None = UNSET
    buyer_type: str | None = UNSET
    city: str | None = UNSET
    state: str | None = UNSET
    country: str | None = strawberry.field(default=UNSET, description="ISO 3166-1 alpha-2.")
    timezone: str | None = UNSET
    locale: str | None = UNSET
    birth_date: date | None = UNSET
    attributes: JSON | None = strawberry.field(default=UNSET, description="Merged into the stored attributes.")

    def to_fields(self) -> dict[str, Any]:
        return given(external_id=self.external_id, email=self.email, phone=self.phone, push_token=self.push_token,
                     first_name=self.first_name,
                     last_name=self.last_name, company=self.company, buyer_type=self.buyer_type, city=self.city,
                     state=self.state, country=self.country, timezone=self.timezone, locale=self.locale,
                     birth_date=self.birth_date, attributes=self.attributes)


@strawberry.input
class DeleteTagInput:
    id: GlobalID


@strawberry.input
class TagAssignmentInput:
    customer_ids: list[GlobalID]
    tag_ids: list[GlobalID]


@strawberry.input(description="A file to import for a brand (multipart upload: map the file to `variables.input.file`).")
class ImportFileInput:
    file: Upload
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.input
class UpsertCustomerInput(CustomerFieldsInput):
    brand_id: GlobalID | None = strawberry.field(
        default=None, description="The brand this customer came through (links them to it).")


@strawberry.input
class UpdateCustomerInput(CustomerFieldsInput):
    id: GlobalID


@strawberry.input
class TagInput:
    name: str
    color: str | None = UNSET
    description: str | None = UNSET


@strawberry.input
class UpdateTagInput:
    id: GlobalID
    name: str | None = UNSET
    color: str | None = UNSET
    description: str | None = UNSET


@strawberry.input
class AddCustomerNoteInput:
    customer_id: GlobalID
    body: str
    type: NoteType = DomainNoteType.INFO
    visibility: NoteVisibility = DomainNoteVisibility.INTERNAL
    brand_id: GlobalID | None = None


@strawberry.input
class SetConsentInput:
    customer_id: GlobalID
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    channel: Channel
    granted: bool
    source: str = "api"


@strawberry.type
class CustomerPayload:
    customer: Customer | None = None
    created: bool = False
    errors: list[UserError]


@strawberry.type
class TagPayload:
    tag: Tag | None = None
    errors: list[UserError]


@strawberry.type
class TagAssignmentPayload:
    changed: int = strawberry.field(default=0, description="Assignments added or removed.")
    errors: list[UserError]


@strawberry.type
class NotePayload:
    note: Note | None = None
    errors: list[UserError]


@strawberry.type
class ConsentPayload:
    consent: Consent | None = None
    errors: list[UserError]


def _customer(result: tuple) -> dict[str, Any]:
    customer, created = result
    return {"customer": Customer.from_model(customer), "created": created}


@strawberry.type
class CustomerMutation:
    @strawberry.mutation(description="Create or update a customer, matched on externalId or, failing that, email.")
    async def upsert_customer(self, info: Info, input: UpsertCustomerInput) -> CustomerPayload:
        async def run():
            brand_id = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            return await service.upsert_customer(info.context.principal, input.to_fields(), brand_id=brand_id)

        return await payload(CustomerPayload, run, _customer)

    @strawberry.mutation
    async def update_customer(self, info: Info, input: UpdateCustomerInput) -> CustomerPayload:
        async def run():
            customer = await service.update_customer(info.context.principal, ids.decode(input.id, "Customer"),
                                                     input.to_fields())
            return customer, False

        return await payload(CustomerPayload, run, _customer)

    @strawberry.mutation
    async def create_tag(self, info: Info, input: TagInput) -> TagPayload:
        async def run():
            return await tags.create_tag(info.context.principal,
                                         given(name=input.name, color=input.color, description=input.description))

        return await payload(TagPayload, run, lambda t: {"tag": Tag.from_model(t)})

    @strawberry.mutation
    async def update_tag(self, info: Info, input: UpdateTagInput) -> TagPayload:
        async def run():
            return await tags.update_tag(info.context.principal, ids.decode(input.id, "Tag"),
                                         given(name=input.name, color=input.color, description=input.description))

        return await payload(TagPayload, run, lambda t: {"tag": Tag.from_model(t)})

    @strawberry.mutation
    async def delete_tag(self, info: Info, input: DeleteTagInput) -> TagPayload:
        async def run():
            return await tags.delete_tag(info.context.principal, ids.decode(input.id, "Tag"))

        return await payload(TagPayload, run, lambda t: {"tag": Tag.from_model(t)})

    @strawberry.mutation(description="Assign every tag to every customer (at most 1,000 customers).")
    async def tag_customers(self, info: Info, input: TagAssignmentInput) -> TagAssignmentPayload:
        async def run():
            return await tags.tag_customers(info.context.principal,
                                            ids.decode_many(input.customer_ids, "Customer", "customerIds"),
                                            ids.decode_many(input.tag_ids, "Tag", "tagIds"))

        return await payload(TagAssignmentPayload, run, lambda n: {"changed": n})

    @strawberry.mutation
    async def untag_customers(self, info: Info, input: TagAssignmentInput) -> TagAssignmentPayload:
        async def run():
            return await tags.untag_customers(info.context.principal,
                                              ids.decode_many(input.customer_ids, "Customer", "customerIds"),
                                              ids.decode_many(input.tag_ids, "Tag", "tagIds"))

        return await payload(TagAssignmentPayload, run, lambda n: {"changed": n})

    @strawberry.mutation
    async def add_customer_note(self, info: Info, input: AddCustomerNoteInput) -> NotePayload:
        async def run():
            return await notes.add_note(
                info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"), input.body,
                type=DomainNoteType(input.type.value), visibility=DomainNoteVisibility(input.visibility.value),
                brand_id=ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id,
            )

        return await payload(NotePayload, run, lambda n: {"note": Note.from_model(n)})

    @strawberry.mutation(description="Grant or revoke a brand's consent to reach the customer on a channel.")
    async def set_consent(self, info: Info, input: SetConsentInput) -> ConsentPayload:
        async def run():
            return await consent.set_consent(
                info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"),
                inputs.brand(info, input.brand_id), DomainChannel(input.channel.value), input.granted,
                input.source,
            )

        return await payload(ConsentPayload, run, lambda c: {"consent": Consent.from_model(c)})


@strawberry.type
class CustomerImportMutation:
    @strawberry.mutation(description="Import customers from a CSV or NDJSON file (multipart upload), as a job.")
    async def import_customers(self, info: Info, input: ImportFileInput) -> JobPayload:
        return await upload_job(info, input.brand_id, input.file, start_customer_import)


@strawberry.type
class ProfileMutation:
    @strawberry.mutation(description="Recompute every customer profile of the tenant, as a job.")
    async def rebuild_profiles(self, info: Info) -> JobPayload:
        return await payload(JobPayload, lambda: start_rebuild(info.context.principal), job_result, prefix=None)


OverrideField = strawberry.enum(overrides.OverrideField, name="CustomerOverrideField")


@strawberry.input
class SetCustomerOverrideInput:
    customer_id: GlobalID
    field: OverrideField
    value: BigInt | None = strawberry.field(
        default=None, description="Churn risk 0-100, or lifetime value in cents; null clears the override.")
    reason: str | None = strawberry.field(default=None, description="Required when setting (at most 500 characters).")


@strawberry.input
class SetCustomerRelationshipInput:
    customer_id: GlobalID
    preferred_contact_method: ContactMethod | None = None
    account_manager_id: GlobalID | None = strawberry.field(default=None, description="A Member; null clears.")


@strawberry.type
class CustomerOverrideMutation:
    @strawberry.mutation(description="Override a customer's churn risk or lifetime value with a reason (owners and "
                                     "admins), or clear it with value null: on the timeline and in the audit log.")
    async def set_customer_override(self, info: Info, input: SetCustomerOverrideInput) -> CustomerPayload:
        return await payload(CustomerPayload, lambda: overrides.set_override(
            info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"),
            overrides.OverrideField(input.field.value), input.value, input.reason),
            lambda c: {"customer": Customer.from_model(c)})

    @strawberry.mutation(description="Set a customer's preferred contact method and account manager (null clears).")
    async def set_customer_relationship(self, info: Info, input: SetCustomerRelationshipInput) -> CustomerPayload:
        return await payload(CustomerPayload, lambda: overrides.set_relationship(
            info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"),
            preferred_contact_method=(overrides.ContactMethod(input.preferred_contact_method.value)
                                      if input.preferred_contact_method else None),
            account_manager_id=ids.optional(input.account_manager_id, "Member", "accountManagerId")),
            lambda c: {"customer": Customer.from_model(c)})
