"""Burn scale bars, labels and data bars into images with real fonts (as microscope exports do).

For testing and benchmarking :mod:`etem_helpers.preprocess.annotations` and for teaching: the
bar and its label are drawn by matplotlib (anti-aliased, sub-pixel positions), the data bar
(an SEM-like info strip) by Pillow with the DejaVu Sans TrueType font shipped with matplotlib.
matplotlib and Pillow are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CORNERS", "BurnedIn", "burn_in_scale_bar", "export_8bit"]

#: Where :func:`burn_in_scale_bar` can put the bar.
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_DPI = 100.0


@dataclass(frozen=True)
class BurnedIn:
    """An image with a burned-in scale bar and what was drawn where.

    Attributes
    ----------
    image : numpy.ndarray
        The image with the overlays (uint8 when exported to 8 bits, else float32).
    bar_length_px : float
        True length of the bar (outer ends, sub-pixel).
    bar_bbox_px, label_bbox_px : tuple of int
        ``(row_start, col_start, row_stop, col_stop)`` of the pixels the bar and its label
        touch.
    strip_bbox_px : tuple of int or None
        The data bar's rows (full width), or None.
    coverage : numpy.ndarray
        float32 0-1 opacity of all overlays per pixel.
    """

    image: np.ndarray
    bar_length_px: float
    bar_bbox_px: tuple[int, int, int, int]
    label_bbox_px: tuple[int, int, int, int]
    strip_bbox_px: tuple[int, int, int, int] | None
    coverage: np.ndarray


def export_8bit(image, *, saturated_percent: float = 0.0) -> np.ndarray:
    """Stretch an image to 0-255 uint8 as an export would (optionally clipping a percentage).

    Parameters
    ----------
    image : array_like
        2-D image.
    saturated_percent : float
        Percentage of pixels clipped at each end (0: min-max stretch).

    Returns
    -------
    numpy.ndarray
        uint8 image.
    """
    array = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(array, [saturated_percent, 100.0 - saturated_percent])
    scaled = (array - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _bbox(coverage: np.ndarray, threshold: float = 0.02) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((coverage > threshold).any(axis=1))
    cols = np.flatnonzero((coverage > threshold).any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _render_matplotlib(shape, draw) -> np.ndarray:
    """Opacity (0-1) of what ``draw(ax)`` draws on a transparent canvas of ``shape`` pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = shape
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(figure)
    figure.patch.set_alpha(0.0)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()
    axes.patch.set_alpha(0.0)
    draw(axes)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    if rgba.shape[:2] != (height, width):
        raise RuntimeError(f"matplotlib rendered {rgba.shape[:2]}, expected {shape}.")
    return rgba[..., 3].astype(np.float32) / 255.0


def _bar_and_label(shape, *, x0, y0, length_px, thickness_px, label, font_px, label_above,
                   ticks_px) -> tuple[np.ndarray, np.ndarray]:
    """Opacity of the bar (with optional end ticks) and of its label."""
    from matplotlib.patches import Rectangle

    def draw_bar(axes):
        axes.add_patch(Rectangle((x0, y0), length_px, thickness_px, facecolor="k",
                                 edgecolor="none", linewidth=0, snap=False))
        if ticks_px:
            tick = max(1.0, thickness_px / 2.0)
            for x in (x0, x0 + length_px - tick):
                axes.add_patch(Rectangle((x, y0 - ticks_px), tick, thickness_px + 2 * ticks_px,
                                         facecolor="k", edgecolor="none", linewidth=0,
                                         snap=False))

    def draw_label(axes):
        gap = 0.3 * font_px
        y = y0 - gap if label_above else y0 + thickness_px + gap
        axes.text(x0 + length_px / 2.0, y, label, fontsize=font_px * 72.0 / _DPI,
                  family="DejaVu Sans", ha="center", va="bottom" if label_above else "top",
                  color="k")

    return _render_matplotlib(shape, draw_bar), _render_matplotlib(shape, draw_label)


def _info_strip(shape, *, strip_px: int, text: str) -> np.ndarray:
    """Opacity of SEM-like info-strip text (white on the strip) drawn with Pillow."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    height, width = shape
    layer = Image.new("L", (width, height), 0)
    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), max(8, int(strip_px * 0.45)))
    ImageDraw.Draw(layer).text((6, height - strip_px + strip_px * 0.25), text, fill=255,
                               font=font)
    return np.asarray(layer, dtype=np.float32) / 255.0


def burn_in_scale_bar(
    image,
    *,
    bar_length_px: float,
    label: str = "100 nm",
    corner: str = "bottom-right",
    colour: str = "white",
    thickness_px: float = 6.0,
    font_px: float = 16.0,
    margin_px: float = 20.0,
    label_above: bool = True,
    ticks_px: float = 0.0,
    strip_px: int = 0,
    strip_text: str = "HV 200.0 kV   Mag 50 kx   WD 5.1 mm   Det TLD   HFW 2.07 um",
    to_8bit: bool = True,
    offset_px: float = 0.0,
) -> BurnedIn:
    """Draw a scale bar of ``bar_length_px`` with its label (and an info strip) into an image.

    Parameters
    ----------
    image : array_like
        2-D grey image.
    bar_length_px : float
        Bar length in pixels (sub-pixel lengths and positions are anti-aliased).
    label : str
        Text written next to the bar.
    corner : {"bottom-right", "bottom-left", "top-right", "top-left"}
        Where the bar goes.
    colour : {"white", "black"}
        Overlay colour: the maximum (255) or minimum (0) of the 8-bit export, or the image's
        max/min for a float image.
    thickness_px, font_px, margin_px : float
        Bar thickness, label height (em size) and distance from the image edges, in pixels.
    label_above : bool
        Label above (True) or below the bar.
    ticks_px : float
        Height of end ticks above and below the bar (0: none).
    strip_px : int
        Height of a black info strip with white text at the bottom (0: none); the bar then
        sits above it in the bottom corners.
    strip_text : str
        Text of the info strip.
    to_8bit : bool
        Export to uint8 first (as microscope software does).
    offset_px : float
        Sub-pixel shift of the bar's left end.

    Returns
    -------
    BurnedIn
    """
    if corner not in CORNERS:
        raise ValueError(f"corner={corner!r} must be one of {CORNERS}.")
    if colour not in ("white", "black"):
        raise ValueError(f"colour={colour!r} must be 'white' or 'black'.")
    base = export_8bit(image) if to_8bit else np.asarray(image, dtype=np.float32)
    height, width = base.shape
    value = (255.0 if to_8bit else float(base.max())) if colour == "white" else \
        (0.0 if to_8bit else float(base.min()))
    x0 = (margin_px if "left" in corner else width - margin_px - bar_length_px) + offset_px
    room = 0.3 * font_px + 1.2 * font_px + ticks_px
    if "bottom" in corner:
        y0 = height - strip_px - margin_px - thickness_px - (0 if label_above else room)
    else:
        y0 = margin_px + (room if label_above else 0.0)
    bar, text = _bar_and_label(base.shape, x0=x0, y0=y0, length_px=bar_length_px,
                               thickness_px=thickness_px, label=label, font_px=font_px,
                               label_above=label_above, ticks_px=ticks_px)
    coverage = np.maximum(bar, text)
    out = base.astype(np.float64) * (1.0 - coverage) + value * coverage
    strip_box = None
    if strip_px:
        dark, bright = (0.0, 255.0) if to_8bit else (float(base.min()), float(base.max()))
        out[height - strip_px :] = dark
        glyphs = _info_strip(base.shape, strip_px=strip_px, text=strip_text)
        out = out * (1.0 - glyphs) + bright * glyphs
        coverage = np.maximum(coverage, glyphs)
        coverage[height - strip_px :] = 1.0
        strip_box = (height - strip_px, 0, height, width)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8) if to_8bit else out.astype(np.float32)
    return BurnedIn(image=out, bar_length_px=float(bar_length_px), bar_bbox_px=_bbox(bar),
                    label_bbox_px=_bbox(text), strip_bbox_px=strip_box,
                    coverage=coverage.astype(np.float32))
