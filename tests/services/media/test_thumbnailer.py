"""The thumbnailer on images Pillow makes in tmp_path: geometry, formats, animation, and hostile
input (truncated, random, forged headers claiming huge sizes)."""

from __future__ import annotations

import io
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageFile

from myelin.services.media.thumbnailer import (
    THUMBNAIL_CONTENT_TYPES,
    ImageInfo,
    ImageTooLarge,
    Thumbnail,
    ThumbnailError,
    make_thumbnail,
    output_size,
    probe,
)

BIG = 10_000_000
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def save(tmp_path: Path, name: str, image: Image.Image, fmt: str, **params: object) -> Path:
    path = tmp_path / name
    image.save(path, fmt, **params)
    return path


def thumb(path: Path, w: int, h: int, method: str = "scale", *, animated: bool = False,
          max_pixels: int = BIG) -> Thumbnail:
    return make_thumbnail(path, w, h, method, animated=animated, max_pixels=max_pixels)


def decode(t: Thumbnail) -> Image.Image:
    im = Image.open(io.BytesIO(t.data))
    assert Image.MIME[im.format or ""] == t.content_type
    assert t.content_type in THUMBNAIL_CONTENT_TYPES
    assert im.size == (t.width, t.height)
    return im


def frame_count(im: Image.Image) -> int:
    return int(getattr(im, "n_frames", 1))


def close_to(pixel: object, colour: tuple[int, ...], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    count = size[0] * size[1] * len(mode)
    return Image.frombytes(mode, size, random.Random(0).randbytes(count))


def forged_png(width: int, height: int) -> bytes:
    """A PNG header claiming any size, with no pixel data behind it: tiny on disk, and any
    attempt to decode it fails, so an ImageTooLarge proves the check ran before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def gif_frames(count: int, size: tuple[int, int] = (200, 100)) -> list[Image.Image]:
    colours = [RED, GREEN, BLUE, (255, 255, 0), (0, 255, 255), (255, 0, 255), (0, 0, 0)]
    return [Image.new("RGB", size, colours[i % len(colours)]) for i in range(count)]


# -- output_size ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "box", "method", "expected"), [
    ((640, 480), (32, 32), "crop", (32, 32)),
    ((640, 480), (96, 96), "crop", (96, 96)),
    ((640, 480), (320, 240), "scale", (320, 240)),
    ((1000, 500), (640, 480), "scale", (640, 320)),
    ((500, 1000), (640, 480), "scale", (240, 480)),
    ((640, 480), (800, 600), "scale", (640, 480)),  # fits already: never upscaled
    ((100, 50), (640, 480), "scale", (100, 50)),
    ((700, 300), (640, 480), "scale", (640, 274)),  # only one side over the box
    ((640, 480), (800, 600), "crop", (640, 480)),
    ((20, 10), (32, 32), "crop", (10, 10)),  # too small: the requested aspect, not upscaled
    ((50, 50), (64, 32), "crop", (50, 25)),
    ((50, 100), (64, 32), "crop", (50, 25)),
    ((1, 1000), (96, 96), "crop", (1, 1)),
    ((10_000, 1), (320, 240), "scale", (320, 1)),  # never rounded down to nothing
    ((3, 2), (2, 2), "scale", (2, 1)),
])
def test_output_size(source: tuple[int, int], box: tuple[int, int], method: str,
                     expected: tuple[int, int]) -> None:
    assert output_size(*source, *box, method) == expected


@pytest.mark.parametrize("method", ["crop", "scale"])
def test_output_size_is_never_larger_than_the_image_and_scale_fits_the_box(method: str) -> None:
    rng = random.Random(1)
    for _ in range(500):
        w, h, rw, rh = (rng.randint(1, 3000) for _ in range(4))
        out_w, out_h = output_size(w, h, rw, rh, method)
        assert 1 <= out_w <= w and 1 <= out_h <= h
        if method == "scale":
            assert out_w <= rw and out_h <= rh
            assert (out_w, out_h) == (w, h) or out_w == rw or out_h == rh
        elif w >= rw and h >= rh:
            assert (out_w, out_h) == (rw, rh)


@pytest.mark.parametrize("args", [
    (0, 10, 10, 10, "scale"), (10, 0, 10, 10, "crop"), (10, 10, 0, 10, "scale"),
    (10, 10, 10, -1, "crop"), (-5, 10, 10, 10, "scale"), (10, 10, 10, 10, "fit"),
    (10, 10, 10, 10, ""),
])
def test_output_size_rejects_bad_arguments(args: tuple[int, int, int, int, str]) -> None:
    with pytest.raises(ValueError):
        output_size(*args)


def test_make_thumbnail_rejects_bad_arguments_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        thumb(tmp_path / "missing.png", 0, 10)
    with pytest.raises(ValueError):
        thumb(tmp_path / "missing.png", 10, 10, "squash")


# -- geometry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("box", "method", "expected"), [
    ((32, 32), "crop", (32, 32)),
    ((96, 96), "crop", (96, 96)),
    ((320, 240), "scale", (320, 240)),
    ((640, 480), "scale", (640, 480)),
    ((800, 600), "scale", (640, 480)),
    ((100, 100), "scale", (100, 75)),
    ((800, 600), "crop", (640, 480)),
])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_sizes_on_640x480(tmp_path: Path, fmt: str, box: tuple[int, int], method: str,
                          expected: tuple[int, int]) -> None:
    path = save(tmp_path, "src", Image.new("RGB", (640, 480), RED), fmt)
    t = thumb(path, *box, method)
    assert (t.width, t.height) == expected == output_size(640, 480, *box, method)
    assert decode(t).size == expected
    assert not t.animated


def test_scale_into_wide_box(tmp_path: Path) -> None:
    path = save(tmp_path, "wide.png", Image.new("RGB", (1000, 500), RED), "PNG")
    assert (thumb(path, 640, 480).width, thumb(path, 640, 480).height) == (640, 320)


def test_small_source_is_not_upscaled(tmp_path: Path) -> None:
    path = save(tmp_path, "small.png", Image.new("RGB", (20, 10), RED), "PNG")
    assert decode(thumb(path, 800, 600)).size == (20, 10)
    assert decode(thumb(path, 96, 96, "crop")).size == (10, 10)


def test_crop_takes_the_centre(tmp_path: Path) -> None:
    im = Image.new("RGB", (300, 100), RED)
    im.paste(GREEN, (100, 0, 200, 100))
    im.paste(BLUE, (200, 0, 300, 100))
    out = decode(thumb(save(tmp_path, "bands.png", im, "PNG"), 32, 32, "crop")).convert("RGB")
    for xy in [(0, 0), (16, 16), (31, 31), (0, 31), (31, 0)]:
        assert close_to(out.getpixel(xy), GREEN), xy


def test_scale_keeps_everything(tmp_path: Path) -> None:
    im = Image.new("RGB", (300, 100), RED)
    im.paste(BLUE, (200, 0, 300, 100))
    out = decode(thumb(save(tmp_path, "bands.png", im, "PNG"), 60, 60)).convert("RGB")
    assert out.size == (60, 20)
    assert close_to(out.getpixel((0, 10)), RED) and close_to(out.getpixel((59, 10)), BLUE)


def test_exif_rotated_jpeg(tmp_path: Path) -> None:
    # Stored 640x480, left half red; orientation 6 shows it turned clockwise: 480x640, red on top.
    im = Image.new("RGB", (640, 480), BLUE)
    im.paste(RED, (0, 0, 320, 480))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path, "rotated.jpg", im, "JPEG", exif=exif)
    assert probe(path, max_pixels=BIG) == ImageInfo(480, 640, "image/jpeg", False, 1)
    t = thumb(path, 320, 240)
    assert (t.width, t.height) == (180, 240)
    out = decode(t)
    assert close_to(out.getpixel((90, 10)), RED) and close_to(out.getpixel((90, 230)), BLUE)
    assert "exif" not in out.info  # the orientation is applied, so it must not be applied twice
    crop = decode(thumb(path, 96, 48, "crop"))
    assert crop.size == (96, 48)
    assert close_to(crop.getpixel((48, 2)), RED) and close_to(crop.getpixel((48, 45)), BLUE)


def test_large_jpeg_decodes_at_reduced_scale_but_keeps_the_exact_size(tmp_path: Path) -> None:
    path = save(tmp_path, "big.jpg", noise((1600, 1200)), "JPEG")
    for box, method in [((32, 32), "crop"), ((320, 240), "scale"), ((100, 33), "crop")]:
        t = thumb(path, *box, method)
        assert decode(t).size == output_size(1600, 1200, *box, method)


# -- formats and modes ---------------------------------------------------------------------------


def test_jpeg_stays_jpeg_without_metadata(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    path = save(tmp_path, "photo.jpg", noise((200, 100)), "JPEG", exif=exif, comment=b"hello")
    out = decode(thumb(path, 100, 100))
    assert out.format == "JPEG" and out.mode == "RGB"
    assert not {"exif", "comment", "xmp"} & out.info.keys()


def test_greyscale_and_cmyk_jpeg(tmp_path: Path) -> None:
    grey = decode(thumb(save(tmp_path, "g.jpg", Image.new("L", (64, 64), 90), "JPEG"), 32, 32))
    assert (grey.format, grey.mode) == ("JPEG", "L")
    fake_cmyk_icc = bytes(16) + b"CMYK" + bytes(108)
    path = save(tmp_path, "c.jpg", Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG",
                icc_profile=fake_cmyk_icc)
    assert probe(path, max_pixels=BIG).content_type == "image/jpeg"
    out = decode(thumb(path, 32, 32))
    assert (out.format, out.mode) == ("JPEG", "RGB")
    assert close_to(out.getpixel((16, 16)), RED)
    assert "icc_profile" not in out.info  # a CMYK profile would misdescribe RGB pixels


def test_rgb_icc_profile_is_kept(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(tmp_path, "icc.png", Image.new("RGB", (64, 64), RED), "PNG", icc_profile=srgb)
    assert decode(thumb(path, 32, 32)).info.get("icc_profile") == srgb


def test_png_with_alpha_stays_rgba_png(tmp_path: Path) -> None:
    im = Image.new("RGBA", (100, 100), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 50, 100))
    out = decode(thumb(save(tmp_path, "a.png", im, "PNG"), 50, 50))
    assert (out.format, out.mode, out.size) == ("PNG", "RGBA", (50, 50))
    assert out.getpixel((5, 25))[3] == 0  # type: ignore[index]
    assert out.getpixel((45, 25)) == (255, 0, 0, 255)


def test_palette_gif_becomes_png(tmp_path: Path) -> None:
    im = Image.new("RGB", (100, 100), GREEN).convert("P")
    path = save(tmp_path, "p.gif", im, "GIF")
    assert probe(path, max_pixels=BIG) == ImageInfo(100, 100, "image/gif", False, 1)
    out = decode(thumb(path, 50, 50))
    assert (out.format, out.mode) == ("PNG", "RGB")
    assert close_to(out.getpixel((25, 25)), GREEN)


def test_transparent_palette_png_keeps_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (64, 64), 0)
    im.putpalette([*RED, *GREEN])
    im.paste(1, (32, 0, 64, 64))
    out = decode(thumb(save(tmp_path, "t.png", im, "PNG", transparency=0), 32, 32))
    assert out.mode == "RGBA"
    assert out.getpixel((2, 16))[3] == 0 and out.getpixel((30, 16)) == (*GREEN, 255)  # type: ignore[index]


@pytest.mark.parametrize(("mode", "colour", "out_mode"), [
    ("1", 1, "L"), ("L", 128, "L"), ("LA", (128, 200), "LA"), ("I;16", 32768, "L"),
    ("RGB", RED, "RGB"),
])
def test_png_modes(tmp_path: Path, mode: str, colour: object, out_mode: str) -> None:
    path = save(tmp_path, "m.png", Image.new(mode, (64, 64), colour), "PNG")  # type: ignore[arg-type]
    out = decode(thumb(path, 32, 32))
    assert (out.format, out.mode) == ("PNG", out_mode)
    if mode == "I;16":
        assert out.getpixel((16, 16)) == 128  # scaled to 8 bits, not clipped to white


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("BMP", "image/bmp"), ("TIFF", "image/tiff"), ("WEBP", "image/webp"),
])
def test_other_formats_become_png(tmp_path: Path, fmt: str, content_type: str) -> None:
    path = save(tmp_path, "x", Image.new("RGB", (120, 60), BLUE), fmt)
    assert probe(path, max_pixels=BIG) == ImageInfo(120, 60, content_type, False, 1)
    out = decode(thumb(path, 60, 60))
    assert (out.format, out.size) == ("PNG", (60, 30))


@pytest.mark.parametrize(("fmt", "content_type"), [("ICO", "image/x-icon"), ("AVIF", "image/avif")])
def test_icons_and_avif(tmp_path: Path, fmt: str, content_type: str) -> None:
    if fmt not in Image.SAVE:
        pytest.skip(f"this Pillow has no {fmt} support")
    path = save(tmp_path, "x", Image.new("RGB", (64, 64), BLUE), fmt)
    assert probe(path, max_pixels=BIG) == ImageInfo(64, 64, content_type, False, 1)
    out = decode(thumb(path, 32, 32))
    assert (out.format, out.size) == ("PNG", (32, 32)) and close_to(out.getpixel((16, 16)), BLUE)


def test_multi_picture_jpeg_is_a_still_jpeg(tmp_path: Path) -> None:
    path = save(tmp_path, "mpo.jpg", Image.new("RGB", (64, 64), RED), "MPO", save_all=True,
                append_images=[Image.new("RGB", (64, 64), BLUE)])
    assert probe(path, max_pixels=BIG) == ImageInfo(64, 64, "image/jpeg", False, 1)
    t = thumb(path, 32, 32, animated=True)
    assert (t.content_type, t.animated) == ("image/jpeg", False)
    assert close_to(decode(t).getpixel((16, 16)), RED)


def test_multi_page_tiff_is_not_animated(tmp_path: Path) -> None:
    path = save(tmp_path, "pages.tiff", Image.new("RGB", (64, 64), RED), "TIFF", save_all=True,
                append_images=[Image.new("RGB", (64, 64), BLUE)])
    assert probe(path, max_pixels=BIG) == ImageInfo(64, 64, "image/tiff", False, 1)
    assert thumb(path, 32, 32, animated=True).content_type == "image/png"


# -- animation -----------------------------------------------------------------------------------


def test_animated_gif_becomes_animated_webp(tmp_path: Path) -> None:
    path = save(tmp_path, "anim.gif", gif_frames(4)[0], "GIF", save_all=True,
                append_images=gif_frames(4)[1:], duration=[50, 60, 70, 80], loop=0)
    assert probe(path, max_pixels=BIG) == ImageInfo(200, 100, "image/gif", True, 4)
    t = thumb(path, 100, 100, animated=True)
    assert (t.content_type, t.animated, t.width, t.height) == ("image/webp", True, 100, 50)
    out = decode(t)
    assert frame_count(out) == 4 and out.info["loop"] == 0
    durations = []
    for index, colour in enumerate([RED, GREEN, BLUE]):
        out.seek(index)
        out.load()  # Pillow's WebP reader sets the duration when it decodes the frame
        assert out.size == (100, 50)
        durations.append(out.info["duration"])
        assert close_to(out.convert("RGB").getpixel((50, 25)), colour)
    assert durations == [50, 60, 70]
    crop = decode(thumb(path, 32, 32, "crop", animated=True))
    assert frame_count(crop) == 4 and crop.size == (32, 32)


def test_gif_without_loop_extension_plays_once(tmp_path: Path) -> None:
    path = save(tmp_path, "once.gif", gif_frames(2)[0], "GIF", save_all=True,
                append_images=gif_frames(2)[1:], duration=0)
    out = decode(thumb(path, 100, 100, animated=True))
    out.load()
    assert out.info["loop"] == 1 and out.info["duration"] == 100  # as browsers play 0 ms frames


def test_animated_false_gives_first_frame_png(tmp_path: Path) -> None:
    path = save(tmp_path, "anim.gif", gif_frames(3)[0], "GIF", save_all=True,
                append_images=gif_frames(3)[1:], duration=50, loop=0)
    t = thumb(path, 100, 100, animated=False)
    assert (t.content_type, t.animated) == ("image/png", False)
    out = decode(t)
    assert not getattr(out, "is_animated", False) and out.size == (100, 50)
    assert close_to(out.convert("RGB").getpixel((50, 25)), RED)


def test_animated_request_on_still_image_gives_still(tmp_path: Path) -> None:
    path = save(tmp_path, "still.png", Image.new("RGB", (100, 100), RED), "PNG")
    t = thumb(path, 50, 50, animated=True)
    assert (t.content_type, t.animated) == ("image/png", False)


def test_apng_and_animated_webp_sources(tmp_path: Path) -> None:
    frames = gif_frames(3, (80, 80))
    for name, fmt in [("a.png", "PNG"), ("a.webp", "WEBP")]:
        path = save(tmp_path, name, frames[0], fmt, save_all=True, append_images=frames[1:],
                    duration=[40, 50, 60], loop=3)
        assert probe(path, max_pixels=BIG).frames == 3
        out = decode(thumb(path, 40, 40, animated=True))
        assert (out.format, frame_count(out), out.size) == ("WEBP", 3, (40, 40))
        assert out.info["loop"] == 3
        still = decode(thumb(path, 40, 40))
        assert still.format == "PNG" and close_to(still.getpixel((20, 20)), RED)


def test_apng_default_image_is_not_a_frame(tmp_path: Path) -> None:
    default, *animation = gif_frames(4, (64, 64))
    path = save(tmp_path, "d.png", default, "PNG", save_all=True, append_images=animation,
                default_image=True)
    assert probe(path, max_pixels=BIG) == ImageInfo(64, 64, "image/png", True, 3)
    out = decode(thumb(path, 32, 32, animated=True))
    assert frame_count(out) == 3
    assert close_to(out.convert("RGB").getpixel((16, 16)), GREEN)  # animation[0], not default
    assert close_to(decode(thumb(path, 32, 32)).getpixel((16, 16)), RED)


def test_gif_frame_growing_the_canvas_is_clipped_and_counted(tmp_path: Path) -> None:
    first = Image.new("RGB", (100, 100), RED)
    second = first.copy()
    second.paste(BLUE, (90, 90, 100, 100))  # saved as a 10x10 frame placed at (90, 90)
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    data = bytearray(buf.getvalue())
    at = data.index(b"\x2c\x5a\x00\x5a\x00")  # that frame's image descriptor
    data[at + 1 : at + 3] = (200).to_bytes(2, "little")  # now it reaches x = 210
    path = tmp_path / "grow.gif"
    path.write_bytes(bytes(data))
    assert probe(path, max_pixels=BIG) == ImageInfo(100, 100, "image/gif", True, 2)
    t = thumb(path, 50, 50, animated=True)
    assert (t.content_type, t.width, t.height) == ("image/webp", 50, 50)
    with pytest.raises(ImageTooLarge):  # 210x100 once the frame is read
        thumb(path, 50, 50, animated=True, max_pixels=15_000)


def test_long_animation_falls_back_to_a_still(tmp_path: Path) -> None:
    frames = gif_frames(6)  # 6 frames of 200x100: 120_000 pixels to decode
    path = save(tmp_path, "long.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    t = thumb(path, 100, 100, animated=True, max_pixels=20_000)  # budget 4 * 20_000
    assert (t.content_type, t.animated) == ("image/png", False)
    assert thumb(path, 100, 100, animated=True, max_pixels=30_000).animated


# -- hostile input -------------------------------------------------------------------------------


def test_loading_truncated_images_stays_off() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_image(tmp_path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    noise((128, 128)).save(buf, fmt)
    path = tmp_path / "cut"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ThumbnailError) as info:
        thumb(path, 32, 32)
    assert type(info.value) is ThumbnailError


@pytest.mark.parametrize("data", [
    random.Random(2).randbytes(4096), b"", b"\x89PNG\r\n\x1a\n", b"GIF89a\x10\x00",
    b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n",
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n",
    b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
])
def test_not_an_image(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk"
    path.write_bytes(data)
    with pytest.raises(ThumbnailError):
        probe(path, max_pixels=BIG)
    with pytest.raises(ThumbnailError):
        thumb(path, 32, 32, animated=True)


def test_probe_reads_only_the_header(tmp_path: Path) -> None:
    path = tmp_path / "header_only.png"
    path.write_bytes(forged_png(100, 100))
    assert probe(path, max_pixels=BIG) == ImageInfo(100, 100, "image/png", False, 1)
    with pytest.raises(ThumbnailError):
        thumb(path, 32, 32)


def test_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(forged_png(5000, 5000))  # under Pillow's own limit: our check decides
    for call in (lambda: probe(path, max_pixels=BIG), lambda: thumb(path, 32, 32)):
        with pytest.raises(ImageTooLarge):
            call()
    assert probe(path, max_pixels=25_000_000).width == 5000  # the limit itself is allowed


def test_huge_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(forged_png(20_000, 20_000))  # past Pillow's error threshold too
    assert path.stat().st_size < 100
    with pytest.raises(ImageTooLarge):
        probe(path, max_pixels=BIG)
    with pytest.raises(ImageTooLarge):
        thumb(path, 32, 32, animated=True)


def test_real_bilevel_bomb_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, "bomb1.png", Image.new("1", (4000, 4000)), "PNG")
    assert path.stat().st_size < 10_000
    with pytest.raises(ImageTooLarge):
        thumb(path, 32, 32, max_pixels=1_000_000)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_as_error_is_mapped(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(forged_png(10_000, 10_000))  # between Pillow's warning and error limits
    with pytest.raises(ImageTooLarge):
        probe(path, max_pixels=200_000_000)
    with pytest.raises(ImageTooLarge):
        thumb(path, 32, 32, max_pixels=200_000_000)


def test_concurrent_calls_agree(tmp_path: Path) -> None:
    paths = [
        save(tmp_path, "a.jpg", noise((300, 200)), "JPEG"),
        save(tmp_path, "b.gif", gif_frames(3)[0], "GIF", save_all=True,
             append_images=gif_frames(3)[1:]),
    ]
    jobs = [(path, box, method) for path in paths
            for box, method in [((32, 32), "crop"), ((96, 96), "crop"), ((120, 90), "scale")]]

    def run(job: tuple[Path, tuple[int, int], str]) -> bytes:
        return thumb(job[0], *job[1], job[2], animated=True).data

    expected = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(run, jobs * 4)) == expected * 4


def test_missing_file_is_not_a_content_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope", max_pixels=BIG)
    with pytest.raises(FileNotFoundError):
        thumb(tmp_path / "nope", 32, 32)
