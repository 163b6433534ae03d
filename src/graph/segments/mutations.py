"""Segment mutations: create, update (with a dry run), archive, duplicate, refresh, static members."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.file_uploads import Upload
from strawberry.relay import GlobalID

from domain.segments import membership, refresh, service
from domain.segments.catalogue import declare_custom_attribute
from domain.segments.member_import import start_member_import
from domain.segments.models import SegmentKind as Kind
from domain.segments.service import DryRun
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.jobs.types import JobPayload, job_result
from graph.segments.inputs import CustomAttributeType, SegmentDefinitionInput, to_definition
from graph.segments.types import CustomAttribute, Segment, SegmentDryRun, SegmentKind


@strawberry.input
class CreateSegmentInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    name: str
    kind: SegmentKind = Kind.DYNAMIC
    description: str | None = None
    definition: SegmentDefinitionInput | None = strawberry.field(default=None, description="Dynamic segments.")
    lookalike_source_id: GlobalID | None = strawberry.field(default=None, description="Lookalike segments.")
    lookalike_size: int | None = None
    live: bool | None = strawberry.field(default=None, description=(
        "Dynamic segments: evaluate each changed customer within moments (true, the default), or only refresh "
        "(false: for very heavy rules)."))


@strawberry.input
class UpdateSegmentInput:
    id: GlobalID
    name: str | None = UNSET
    description: str | None = UNSET
    is_active: bool | None = UNSET
    definition: SegmentDefinitionInput | None = UNSET
    live: bool | None = strawberry.field(default=UNSET, description="Dynamic segments: live evaluation on or off.")
    dry_run: bool = strawberry.field(default=False, description="Report the counts it would give; save nothing.")


@strawberry.input
class SegmentIdInput:
    id: GlobalID


@strawberry.input
class DuplicateSegmentInput:
    id: GlobalID
    name: str | None = None


@strawberry.input
class SegmentMembersInput:
    segment_id: GlobalID
    customer_ids: list[GlobalID]


@strawberry.input(description="A member file (multipart upload: map the file to `variables.input.file`).")
class ImportSegmentMembersInput:
    segment_id: GlobalID
    file: Upload


@strawberry.input
class DeclareCustomAttributeInput:
    name: str
    type: CustomAttributeType
    label: str | None = None


@strawberry.type
class SegmentPayload:
    segment: Segment | None = None
    errors: list[UserError]


@strawberry.type
class UpdateSegmentPayload:
    segment: Segment | None = None
    dry_run: SegmentDryRun | None = strawberry.field(default=None, description="With dryRun: true, nothing is saved.")
    errors: list[UserError]


@strawberry.type
class SegmentMembersPayload:
    entered: int = 0
    exited: int = 0
    member_count: int = 0
    errors: list[UserError]


@strawberry.type
class CustomAttributePayload:
    custom_attribute: CustomAttribute | None = None
    errors: list[UserError]


def _segment(s: Any) -> dict[str, Any]:
    return {"segment": Segment.from_model(s)}


@strawberry.type
class SegmentMutation:
    @strawberry.mutation
    async def create_segment(self, info: Info, input: CreateSegmentInput) -> SegmentPayload:
        async def run():
            return await service.create_segment(
                info.context.principal, inputs.brand(info, input.brand_id),
                Kind(input.kind.value), {"name": input.name, "description": input.description},
                definition=to_definition(input.definition) if input.definition else None,
                lookalike_source_id=ids.optional(input.lookalike_source_id, "Segment", "lookalikeSourceId"),
                lookalike_size=input.lookalike_size, live=input.live)

        return await payload(SegmentPayload, run, _segment)

    @strawberry.mutation(description="Change a segment; with dryRun: true, report the counts it would give instead.")
    async def update_segment(self, info: Info, input: UpdateSegmentInput) -> UpdateSegmentPayload:
        async def run():
            data = {k: v for k, v in {"name": input.name, "description": input.description,
                                      "is_active": input.is_active}.items() if v is not UNSET}
            definition = to_definition(input.definition) if input.definition not in (UNSET, None) else None
            return await service.update_segment(info.context.principal, ids.decode(input.id, "Segment"), data,
                                                definition=definition, dry_run=input.dry_run,
                                                live=input.live if input.live not in (UNSET, None) else None)

        def build(r: Any) -> dict[str, Any]:
            if isinstance(r, DryRun):
                return {"dry_run": SegmentDryRun(count_before=r.count_before, count_after=r.count_after,
                                                 entering=r.entering, exiting=r.exiting)}
            return _segment(r)

        return await payload(UpdateSegmentPayload, run, build)

    @strawberry.mutation
    async def archive_segment(self, info: Info, input: SegmentIdInput) -> SegmentPayload:
        return await payload(SegmentPayload, lambda: service.archive_segment(
            info.context.principal, ids.decode(input.id, "Segment")), _segment)

    @strawberry.mutation
    async def duplicate_segment(self, info: Info, input: DuplicateSegmentInput) -> SegmentPayload:
        return await payload(SegmentPayload, lambda: service.duplicate_segment(
            info.context.principal, ids.decode(input.id, "Segment"), input.name), _segment)

    @strawberry.mutation(description="Refresh now, as a job (throttled per segment).")
    async def refresh_segment(self, info: Info, input: SegmentIdInput) -> JobPayload:
        return await payload(JobPayload, lambda: refresh.request_refresh(
            info.context.principal, ids.decode(input.id, "Segment")), job_result)

    @strawberry.mutation(description="Add customers to a static segment.")
    async def add_segment_members(self, info: Info, input: SegmentMembersInput) -> SegmentMembersPayload:
        async def run():
            return await membership.change_static_members(
                info.context.principal, ids.decode(input.segment_id, "Segment", "segmentId"),
                ids.decode_many(input.customer_ids, "Customer", "customerIds"), [])

        return await payload(SegmentMembersPayload, run, lambda r: {"entered": r.entered, "exited": r.exited,
                                                                    "member_count": r.total})

    @strawberry.mutation(description="Remove customers from a static segment.")
    async def remove_segment_members(self, info: Info, input: SegmentMembersInput) -> SegmentMembersPayload:
        async def run():
            return await membership.change_static_members(
                info.context.principal, ids.decode(input.segment_id, "Segment", "segmentId"), [],
                ids.decode_many(input.customer_ids, "Customer", "customerIds"))

        return await payload(SegmentMembersPayload, run, lambda r: {"entered": r.entered, "exited": r.exited,
                                                                    "member_count": r.total})

    @strawberry.mutation(description="Add or remove static segment members from a CSV or NDJSON file "
                                      "(customerId, externalId or email; optional action add|remove), as a job.")
    async def import_segment_members(self, info: Info, input: ImportSegmentMembersInput) -> JobPayload:
        async def run():
            file = input.file
            content = await file.read()
            return await start_member_import(info.context.principal,
                                             ids.decode(input.segment_id, "Segment", "segmentId"),
                                             getattr(file, "filename", None), getattr(file, "content_type", None),
                                             content)

        return await payload(JobPayload, run, job_result)

    @strawberry.mutation(description="Declare a custom attribute's type so segments can use it.")
    async def declare_custom_attribute(self, info: Info, input: DeclareCustomAttributeInput) -> CustomAttributePayload:
        async def run():
            return await declare_custom_attribute(info.context.principal, input.name, input.type.value, input.label)

        return await payload(CustomAttributePayload, run, lambda c: {
            "custom_attribute": CustomAttribute(name=c.name, type=CustomAttributeType(c.type), label=c.label)})
