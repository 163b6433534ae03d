"""Files sent as multipart uploads."""

from __future__ import annotations

from strawberry.file_uploads import Upload


async def read_upload(file: Upload) -> tuple[str, str, bytes]:
    """The upload's file name, content type and bytes ("upload" and "" when the client named none)."""
    content = await file.read()
    return (getattr(file, "filename", None) or "upload", getattr(file, "content_type", None) or "", content)
