"""Opaque global ids (Relay): ``base64("Type:uuid")`` out, checked and decoded in."""

from __future__ import annotations

import uuid

from strawberry.relay import GlobalID

from domain.errors import DomainError, NotFound


def decode(gid: GlobalID | str, type_name: str, field: str = "id") -> uuid.UUID:
    """The UUID inside a global id of ``type_name``. A raw UUID is accepted too (headers, CLI)."""
    if isinstance(gid, str):
        try:
            return uuid.UUID(gid)
        except ValueError:
            try:
                gid = GlobalID.from_id(gid)
            except Exception:
                raise DomainError(f"{gid!r} is not an id", field=field) from None
    if gid.type_name != type_name:
        raise DomainError(f"expected a {type_name} id, got a {gid.type_name} id", field=field)
    try:
        return uuid.UUID(gid.node_id)
    except ValueError:
        raise NotFound(f"{type_name} not found", field=field) from None


def optional(gid: GlobalID | str | None, type_name: str, field: str) -> uuid.UUID | None:
    """``decode`` for an optional argument: None stays None."""
    return None if gid is None else decode(gid, type_name, field)


def decode_many(gids: list[GlobalID] | None, type_name: str, field: str) -> list[uuid.UUID] | None:
    if gids is None:
        return None
    return [decode(g, type_name, f"{field}[{i}]") for i, g in enumerate(gids)]


def node_uuid(node_id: str) -> uuid.UUID | None:
    """A node id (the part inside a global id) as a UUID; None when it is not one."""
    try:
        return uuid.UUID(node_id)
    except ValueError:
        return None


def node_uuids(node_ids) -> list[uuid.UUID | None]:
    """Node ids as UUIDs; None for any that is not one."""
    return [node_uuid(node_id) for node_id in node_ids]


def encode(type_name: str, value: uuid.UUID) -> GlobalID:
    return GlobalID(type_name, str(value))
