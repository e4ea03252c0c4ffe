"""The images the Responses API takes, told by their bytes: PNG, JPEG, GIF, WebP, at most 20 MiB.
Shared by every place an image reaches the model (view_image, MCP results, app-server input)."""

from __future__ import annotations

MAX_IMAGE_BYTES = 20 * 1024 * 1024


def image_mime(head: bytes) -> str | None:
    """The MIME type from an image's first bytes (16 are enough); None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
