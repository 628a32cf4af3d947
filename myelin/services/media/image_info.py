"""What a thumbnail is, without Pillow: the types the media repository passes around, the
thumbnail geometry, and entry points that load the Pillow half
(:mod:`myelin.services.media.thumbnailer`) on first use.

Pillow with its format plugins is ~6 MiB of resident memory; a server nobody sends an image
to never loads it. The entry points are called in worker threads (they block on CPU), so the
first one imports there too, off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

THUMBNAIL_CONTENT_TYPES: frozenset[str] = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp"}
)
"""What ``make_thumbnail`` may produce, and so what a caller may serve unchanged in its place:
types every browser shows inline."""

METHODS = ("crop", "scale")


class ThumbnailError(Exception):
    """The content cannot be thumbnailed: not an image we read, or broken."""


class ImageTooLarge(ThumbnailError):
    """More pixels than allowed: refusing is the defence against decompression bombs."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says, with width and height as displayed (after EXIF orientation), since
    that is what a thumbnail's geometry is computed from."""

    width: int
    height: int
    content_type: str  # the format Pillow detected, whatever the upload claimed
    animated: bool
    frames: int  # frames of the animation; 1 when not animated


@dataclass(frozen=True, slots=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int
    animated: bool


def output_size(
    width: int, height: int, req_width: int, req_height: int, method: str
) -> tuple[int, int]:
    """The size of the thumbnail of a ``width`` x ``height`` image, without decoding it, so the
    caller can pick among stored thumbnails. Never larger than the image in either dimension.

    "scale" keeps the aspect ratio and fits inside the requested box (as Synapse does).
    "crop" has the requested aspect ratio: exactly the requested size when the image is big
    enough, else the largest such size the image can give.
    """
    if method not in METHODS:
        raise ValueError(f"unknown thumbnail method {method!r}")
    if min(width, height, req_width, req_height) <= 0:
        raise ValueError("sizes must be positive")
    if method == "scale":
        if width <= req_width and height <= req_height:
            return width, height
        if width * req_height >= height * req_width:  # wider than the box: width decides
            return req_width, max(1, _div_round(height * req_width, width))
        return max(1, _div_round(width * req_height, height)), req_height
    if width >= req_width and height >= req_height:
        return req_width, req_height
    if width * req_height <= height * req_width:  # width is the short side relative to the box
        return width, max(1, _div_round(req_height * width, req_width))
    return max(1, _div_round(req_width * height, req_height)), height


def probe(path: Path, *, max_pixels: int) -> ImageInfo:
    """:func:`myelin.services.media.thumbnailer.probe`."""
    from myelin.services.media import thumbnailer

    return thumbnailer.probe(path, max_pixels=max_pixels)


def probe_bytes(data: bytes, *, max_pixels: int) -> ImageInfo:
    """:func:`myelin.services.media.thumbnailer.probe_bytes`."""
    from myelin.services.media import thumbnailer

    return thumbnailer.probe_bytes(data, max_pixels=max_pixels)


def make_thumbnail(path: Path, req_width: int, req_height: int, method: str, *,
                   animated: bool, max_pixels: int) -> Thumbnail:
    """:func:`myelin.services.media.thumbnailer.make_thumbnail`."""
    from myelin.services.media import thumbnailer

    return thumbnailer.make_thumbnail(path, req_width, req_height, method, animated=animated,
                                      max_pixels=max_pixels)


def _div_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, in integers so sizes never suffer float error."""
    return (2 * numerator + denominator) // (2 * denominator)
