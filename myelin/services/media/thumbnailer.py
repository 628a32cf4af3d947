"""Decoding, resizing and encoding thumbnails (client-server API, "Content repository" ->
"Thumbnails"): the pure, synchronous image part of the media repository.

Everything here is a function of one file (on disk, or in memory for ``probe_bytes``) and
blocks on CPU, so callers run it in a thread; nothing touches asyncio, the database or the
network, and no Pillow global is changed at call time, so any number of threads may use it at
once.

Uploads are hostile input. That shapes three rules:

- Only a short list of common formats is even identified (``_FORMATS``): Pillow can open dozens
  more, some through external programs (EPS runs Ghostscript), none of which a chat client needs.
- The pixel count is checked from the header before anything is decoded, so a small file that
  claims to be 20000x20000 is refused without allocating its canvas (``ImageTooLarge``).
- Whatever Pillow raises on broken data (truncated, corrupt, lying headers) becomes
  ``ThumbnailError``; only a missing or unreadable file (an ``OSError`` from opening the path) is
  let through, because that is the storage's problem, not the content's.

Choosing between the original and a thumbnail ("servers should return the original content"
when it already fits) is the caller's business: it has ``probe`` and ``output_size`` for that,
and ``make_thumbnail`` always re-encodes.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image, ImageFile

from myelin.services.media.image_info import (
    METHODS,
    THUMBNAIL_CONTENT_TYPES,
    ImageInfo,
    ImageTooLarge,
    Thumbnail,
    ThumbnailError,
    output_size,
)

__all__ = [
    "METHODS",
    "THUMBNAIL_CONTENT_TYPES",
    "ImageInfo",
    "ImageTooLarge",
    "Thumbnail",
    "ThumbnailError",
    "make_thumbnail",
    "output_size",
    "probe",
    "probe_bytes",
]

JPEG_QUALITY = 80
WEBP_QUALITY = 80
# Decoding every frame of an animation costs frames * width * height. Allowing four times the
# single-image limit keeps ordinary GIFs (a few dozen small frames) animated while a long or
# large animation falls back to its first frame instead of being refused outright.
ANIMATION_BUDGET_FACTOR = 4

# Pillow format name -> content type. MPO is what Pillow calls a JPEG carrying a second picture
# (many phone cameras write one): browsers show it as an ordinary JPEG, and so do we.
_CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "ICO": "image/x-icon",
}
# Formats whose extra frames are an animation (a TIFF's pages or an MPO's second picture are not).
_ANIMATABLE = frozenset({"GIF", "PNG", "WEBP"})

# Registering the plugins is Pillow's own one-time global setup; doing it at import means
# Image.open never has to do it lazily from several threads at once.
Image.init()
# Asking Image.open for a format it does not have raises KeyError, so only list the ones built in
# (AVIF depends on how Pillow was built). MPO is not listed: the JPEG plugin returns it.
_FORMATS = tuple(name for name in _CONTENT_TYPES if name in Image.OPEN)

# What Pillow and its plugins raise on malformed input. Broad on purpose: decoders fail in many
# ways on hostile data, and each must become "cannot thumbnail", not a 500.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's "not a <format> file"
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    AssertionError,
)

# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def probe(path: Path, *, max_pixels: int) -> ImageInfo:
    """Identify an image from its header alone, cheaply enough to run before deciding whether to
    serve the original or make a thumbnail. A GIF's frames are counted by walking its blocks,
    without decoding them."""
    with path.open("rb") as fp:
        return _probe(fp, max_pixels)


def probe_bytes(data: bytes, *, max_pixels: int) -> ImageInfo:
    """``probe`` for bytes in memory: a thumbnail another server sent, checked before it is
    kept or served."""
    return _probe(io.BytesIO(data), max_pixels)


def _probe(fp: BinaryIO, max_pixels: int) -> ImageInfo:
    try:
        with Image.open(fp, formats=_FORMATS) as im:
            return _inspect(im, max_pixels)[0]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as e:
        raise ImageTooLarge(str(e)) from e
    except _DECODE_ERRORS as e:
        raise ThumbnailError(f"cannot read image: {e}") from e


def make_thumbnail(
    path: Path, req_width: int, req_height: int, method: str, *, animated: bool, max_pixels: int
) -> Thumbnail:
    """A thumbnail of the image at ``path``.

    A JPEG gives a JPEG (photos compress far better that way), anything else a PNG, which keeps
    transparency. An animation gives an animated WebP only when ``animated`` is asked for (the
    spec prefers WebP for animation, and ``animated=false`` MUST NOT animate); asked for on a
    still image it is ignored, as the spec says.
    """
    output_size(1, 1, req_width, req_height, method)  # bad arguments are ValueError, not ours
    with path.open("rb") as fp:
        try:
            with Image.open(fp, formats=_FORMATS) as im:
                info, orientation = _inspect(im, max_pixels)
                size = output_size(info.width, info.height, req_width, req_height, method)
                budget = max_pixels * ANIMATION_BUDGET_FACTOR
                if animated and info.animated and info.frames * info.width * info.height <= budget:
                    return _animated(im, info, orientation, size, method, max_pixels)
                return _static(im, info, orientation, size, method)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as e:
            # Pillow's own guard (Image.MAX_IMAGE_PIXELS, left at its default) runs inside
            # Image.open, before ours can: an error past twice that limit, a warning past it
            # (an exception only when warnings are errors). Either means what ours means.
            raise ImageTooLarge(str(e)) from e
        except _DECODE_ERRORS as e:
            raise ThumbnailError(f"cannot thumbnail image: {e}") from e


def _inspect(im: ImageFile.ImageFile, max_pixels: int) -> tuple[ImageInfo, int]:
    """ImageInfo and EXIF orientation of an opened, not yet decoded image."""
    _check_pixels(im.size, max_pixels)
    fmt = im.format or ""
    content_type = _CONTENT_TYPES.get(fmt)
    if content_type is None:  # cannot happen with formats=_FORMATS; be sure anyway
        raise ThumbnailError(f"unsupported image format {fmt!r}")
    frames = 1
    if fmt in _ANIMATABLE and getattr(im, "is_animated", False):
        frames = int(getattr(im, "n_frames", 1)) - _first_frame(im)
    orientation = _orientation(im)
    width, height = im.size
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return ImageInfo(width, height, content_type, frames > 1, max(frames, 1)), orientation


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{width}x{height} is more than {max_pixels} pixels")


def _first_frame(im: ImageFile.ImageFile) -> int:
    """An APNG may have a default image that is shown only by viewers that cannot animate; it is
    frame 0 in Pillow and not part of the animation."""
    return 1 if im.format == "PNG" and im.info.get("default_image") else 0


def _orientation(im: ImageFile.ImageFile) -> int:
    """The EXIF orientation (1 = upright), read without decoding pixels.

    A PNG's eXIf chunk after its image data is ignored: Pillow would decode the whole image to
    reach it, and probe and make_thumbnail must agree on the size. Unreadable EXIF counts as
    upright rather than failing: browsers show such images too.
    """
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _static(
    im: ImageFile.ImageFile, info: ImageInfo, orientation: int, size: tuple[int, int], method: str
) -> Thumbnail:
    jpeg = info.content_type == "image/jpeg"
    if jpeg:
        _draft(im, info, orientation, size, method)
    # Frame 0 even for an APNG with a default image: that image is its intended still.
    icc = im.info.get("icc_profile")
    frame = _transpose(_output_mode(im, jpeg), orientation)
    thumb = _resize(frame, size, method)
    thumb.info = {}  # no EXIF, comments or text chunks: only the pixels and the ICC profile
    buf = io.BytesIO()
    icc = icc if _icc_matches(icc, thumb.mode) else None
    if jpeg:
        thumb.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True, icc_profile=icc)
    else:
        thumb.save(buf, "PNG", icc_profile=icc)
    content_type = "image/jpeg" if jpeg else "image/png"
    return Thumbnail(buf.getvalue(), content_type, thumb.width, thumb.height, False)


def _animated(
    im: ImageFile.ImageFile,
    info: ImageInfo,
    orientation: int,
    size: tuple[int, int],
    method: str,
    max_pixels: int,
) -> Thumbnail:
    """Every frame resized alike into an animated WebP, timing and loop count kept.

    Pillow hands out each frame already composited onto the full canvas, so disposal and
    blending need no care here.
    """
    canvas = im.size
    # GIF without a NETSCAPE extension plays once; APNG and WebP always state it (0 = forever).
    loop = int(im.info.get("loop", 1))
    start = _first_frame(im)
    frames: list[Image.Image] = []
    durations: list[int] = []
    for index in range(start, start + info.frames):
        im.seek(index)
        _check_pixels(im.size, max_pixels)  # a GIF frame may grow the canvas past the header
        frame = im.convert("RGBA")
        if frame.size != canvas:  # browsers clip frames to the logical screen
            frame = frame.crop((0, 0, *canvas))
        durations.append(_duration(im.info.get("duration")))
        frames.append(_resize(_transpose(frame, orientation), size, method))
    buf = io.BytesIO()
    frames[0].info = {}
    frames[0].save(
        buf, "WEBP", save_all=True, append_images=frames[1:], duration=durations, loop=loop,
        quality=WEBP_QUALITY, icc_profile=None,
    )
    width, height = frames[0].size
    return Thumbnail(buf.getvalue(), "image/webp", width, height, True)


def _duration(value: object) -> int:
    """Frame time in ms. Browsers show frames of 10 ms or less for 100 ms; encode that
    explicitly so the WebP plays as the original did (and zero-length frames stay visible)."""
    ms = int(value) if isinstance(value, int | float) else 0
    return 100 if ms <= 10 else ms


def _draft(
    im: ImageFile.ImageFile, info: ImageInfo, orientation: int, size: tuple[int, int], method: str
) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still leaves twice the needed
    resolution: a phone photo then decodes in a fraction of the time and memory, and the final
    LANCZOS pass keeps the quality (the same gap Image.thumbnail uses)."""
    width, height = size
    if method == "crop":  # the whole image is scaled so that the crop box covers the target
        factor = max(width / info.width, height / info.height)
        width, height = math.ceil(info.width * factor), math.ceil(info.height * factor)
    if orientation in _SWAPS_AXES:  # the draft is of the stored, unrotated image
        width, height = height, width
    im.draft(None, (width * 2, height * 2))


def _output_mode(im: Image.Image, jpeg: bool) -> Image.Image:
    """Decode to a mode that resizes well and that the output format stores: L or RGB for a JPEG;
    L, LA, RGB or RGBA for a PNG, with alpha only where the source has transparency."""
    mode = im.mode
    if jpeg:
        return im.convert("L") if mode == "L" else im.convert("RGB")
    if mode in ("L", "RGB") and "transparency" in im.info:  # PNG tRNS colour key
        return im.convert(mode + "A")
    if mode in ("L", "LA", "RGB", "RGBA"):
        im.load()
        return im
    if mode in ("P", "PA"):
        return im.convert("RGBA" if im.has_transparency_data else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode == "La":
        return im.convert("LA")
    if mode == "RGBa":
        return im.convert("RGBA")
    if mode.startswith("I"):  # 16-bit grey; Pillow's convert("L") would clip at 255, not scale
        return im.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "F":
        return im.convert("L")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _transpose(im: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


def _resize(im: Image.Image, size: tuple[int, int], method: str) -> Image.Image:
    """Scale the whole image, or for "crop" the largest centred region with the target's aspect
    ratio; one resampling pass either way. ``reducing_gap`` lets Pillow shrink a large image by
    block averaging first, which is much faster and, at 3, visually the same."""
    width, height = im.size
    out_w, out_h = size
    box: tuple[float, float, float, float] | None = None  # the whole image
    if method == "crop" and width * out_h != height * out_w:
        if width * out_h > height * out_w:  # wider than the target: trim the sides
            crop_w = height * out_w / out_h
            box = ((width - crop_w) / 2, 0, (width + crop_w) / 2, height)
        else:
            crop_h = width * out_h / out_w
            box = (0, (height - crop_h) / 2, width, (height + crop_h) / 2)
    if box is None and size == im.size:
        return im
    return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _icc_matches(icc: object, mode: str) -> bool:
    """Keep the ICC profile only if it describes the output's colour space: a CMYK profile left
    on pixels converted to RGB would make viewers render wrong colours. Bytes 16-20 of an ICC
    header name its colour space."""
    if not isinstance(icc, bytes) or len(icc) < 20:
        return False
    space = icc[16:20]
    return space == b"RGB " if mode in ("RGB", "RGBA") else space == b"GRAY" and mode in ("L", "LA")
