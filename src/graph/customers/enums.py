"""Enums of the customers area, apart from its types so the timeline's typed events can use them."""

from __future__ import annotations

import strawberry

from domain.customers.consent import Channel as DomainChannel
from domain.customers.notes import NoteType as DomainNoteType
from domain.customers.notes import NoteVisibility as DomainNoteVisibility

Channel = strawberry.enum(DomainChannel, name="Channel", description="A way to reach a customer.")
NoteType = strawberry.enum(DomainNoteType, name="NoteType")
NoteVisibility = strawberry.enum(DomainNoteVisibility, name="NoteVisibility")
