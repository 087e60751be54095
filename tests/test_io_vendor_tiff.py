"""Vendor TIFF calibrations and missing codecs in etem_helpers.io.read_micrograph.

The files are written here with tifffile in the layouts the vendors' software writes and
RosettaSciIO's TIFF reader decodes (Gatan's private tags, JEOL SightX XML, TVIPS and Olympus
SIS headers, FEI/Zeiss fallbacks), with a 72 dpi print resolution where the real exports carry
one, so that the generic resolution tags alone would not calibrate them.
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Mapping

import numpy as np
import pytest
import rsciio.tiff
import tifffile

from etem_helpers.io import (
    CorruptFileError,
    MicrographError,
    MissingCalibrationError,
    MissingDependencyError,
    UnknownUnitsError,
    read_micrograph,
)

REL = 1e-6
SHAPE = (40, 64)  # rows, columns: not square, so that swapped axes would show
PRINT_72_DPI = {"resolution": (72, 72), "resolutionunit": tifffile.RESUNIT.INCH}


def _image(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(np.uint16)


def _gatan_tags(x_scale, y_scale, unit: str, *, x_offset=0.0, y_offset=0.0) -> list:
    """Gatan's private tags as DigitalMicrograph's TIFF export writes them (and RosettaSciIO
    reads them): 65003/65004 x/y unit (latin-1 ASCII), 65006/65007 x/y origin, 65009/65010
    x/y scale (doubles; x runs along the columns)."""
    unit_bytes = unit.encode("latin-1")
    return [
        (65003, "s", 0, unit_bytes, False),
        (65004, "s", 0, unit_bytes, False),
        (65006, "d", 1, x_offset, False),
        (65007, "d", 1, y_offset, False),
        (65009, "d", 1, float(x_scale), False),
        (65010, "d", 1, float(y_scale), False),
    ]


# --------------------------------------------------------------------------------------
# Gatan DigitalMicrograph TIFF export
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("unit", "scale_in_unit", "expected_nm"),
    [("nm", 0.37, 0.37), ("µm", 0.0021, 2.1), ("Å", 1.9, 0.19)],
)
def test_gatan_tags_calibrate_a_72_dpi_export(tmp_path, unit, scale_in_unit, expected_nm):
    path = tmp_path / "dm_export.tif"
    image = _image(1)
    tifffile.imwrite(
        path, image, extratags=_gatan_tags(scale_in_unit, scale_in_unit, unit), **PRINT_72_DPI
    )
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(expected_nm, rel=REL)
    assert meta["pixel_size_source"] == "file:gatan-tiff-tags"
    assert meta["tiff_vendor"] == "gatan"
    np.testing.assert_array_equal(read_image, image.astype(np.float32))


def test_gatan_x_scale_is_along_the_columns(tmp_path):
    path = tmp_path / "dm_rect.tif"
    tags = _gatan_tags(0.0021, 0.0025, "µm", x_offset=1.5, y_offset=2.5)
    tifffile.imwrite(path, _image(2), extratags=tags, **PRINT_72_DPI)
    with pytest.warns(UserWarning, match="non-square"):
        _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(2.1, rel=REL)
    assert meta["pixel_size_y_nm"] == pytest.approx(2.5, rel=REL)


def test_gatan_units_stored_as_bytes(tmp_path):
    """Units written as NUL-terminated latin-1 BYTE tags (tifffile returns them as bytes)."""
    path = tmp_path / "dm_bytes.tif"
    unit = "µm".encode("latin-1") + b"\x00"
    tags = [(code, "B", len(unit), unit, False) for code in (65003, 65004)]
    tags += [(code, "d", 1, 0.0021, False) for code in (65009, 65010)]
    tifffile.imwrite(path, _image(17), extratags=tags, **PRINT_72_DPI)
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(2.1, rel=REL)
    assert meta["pixel_size_source"] == "file:gatan-tiff-tags"


def test_gatan_stack_with_time_axis(tmp_path):
    path = tmp_path / "dm_stack.tif"
    stack = _image(3, (3, *SHAPE))
    tags = _gatan_tags(0.5, 0.5, "nm") + [(65005, "s", 0, b"s", False), (65011, "d", 1, 2.5, False)]
    tifffile.imwrite(path, stack, photometric="minisblack", extratags=tags, **PRINT_72_DPI)
    image, pixel_size_nm, meta = read_micrograph(path, frame=1)
    assert pixel_size_nm == pytest.approx(0.5, rel=REL)
    assert meta["pixel_size_source"] == "file:gatan-tiff-tags"
    np.testing.assert_array_equal(image, stack[1].astype(np.float32))


def test_tiff_written_by_rosettasciio_writer(tmp_path):
    """RosettaSciIO's own writer stores the Gatan tags and an ImageJ description."""
    path = tmp_path / "rsciio.tif"
    axes = [
        {"size": n, "name": name, "scale": 0.25, "offset": 0.0, "units": "nm", "navigate": False}
        for n, name in zip(SHAPE, ("y", "x"), strict=True)
    ]
    signal = {
        "data": _image(4).astype(np.float32),
        "axes": axes,
        "metadata": {},
        "original_metadata": {},
    }
    rsciio.tiff.file_writer(str(path), signal)
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.25, rel=REL)
    assert meta["pixel_size_source"] == "file:gatan-tiff-tags"


def test_gatan_reciprocal_units_are_refused(tmp_path):
    path = tmp_path / "dm_fft.tif"
    tifffile.imwrite(path, _image(5), extratags=_gatan_tags(0.01, 0.01, "1/nm"), **PRINT_72_DPI)
    with pytest.raises(UnknownUnitsError, match="reciprocal"):
        read_micrograph(path)


def test_scale_tags_without_gatan_units_are_not_gatan(tmp_path):
    """JEOL uses some of the same private tag numbers (65006-65010) without units."""
    path = tmp_path / "not_gatan.tif"
    tags = [(65009, "d", 1, 0.5, False), (65010, "d", 1, 0.5, False)]
    tifffile.imwrite(path, _image(6), extratags=tags, **PRINT_72_DPI)
    with pytest.raises(MissingCalibrationError, match="print resolution"):
        read_micrograph(path)


def test_rosettasciio_failure_on_gatan_file_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "dm_export.tif"
    tifffile.imwrite(path, _image(7), extratags=_gatan_tags(0.5, 0.5, "nm"), **PRINT_72_DPI)

    def broken_reader(*args, **kwargs):
        raise RuntimeError("simulated decoder bug")

    monkeypatch.setattr(rsciio.tiff, "file_reader", broken_reader)
    with pytest.raises(MissingCalibrationError, match="Gatan DigitalMicrograph") as info:
        read_micrograph(path)
    assert "simulated decoder bug" in str(info.value)
    _, pixel_size_nm, meta = read_micrograph(path, require_calibration=False)
    assert pixel_size_nm is None
    assert "RosettaSciIO" in meta["calibration_error"]


@pytest.mark.parametrize("layout", ["imagej", "fei"])
def test_files_without_vendor_tags_keep_the_fast_path(tmp_path, monkeypatch, layout):
    path = tmp_path / f"{layout}.tif"
    if layout == "imagej":
        tifffile.imwrite(
            path, _image(8), imagej=True, resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "nm"}
        )
        expected_nm, source = 0.3, "file:imagej"
    else:
        fei_text = "[Beam]\r\nHV=200000\r\n[Scan]\r\nPixelWidth=3e-10\r\nPixelHeight=3e-10\r\n"
        tifffile.imwrite(
            path, _image(8), extratags=[(34682, "s", 0, fei_text, True)], **PRINT_72_DPI
        )
        expected_nm, source = 0.3, "file:fei-metadata"

    def must_not_be_called(*args, **kwargs):
        raise AssertionError("RosettaSciIO was called for a file the fast path reads")

    monkeypatch.setattr(rsciio.tiff, "file_reader", must_not_be_called)
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(expected_nm, rel=1e-5)
    assert meta["pixel_size_source"] == source


# --------------------------------------------------------------------------------------
# JEOL SightX, TVIPS, Olympus SIS, FEI and Zeiss fallbacks
# --------------------------------------------------------------------------------------
def _jeol_sightx_xml(mode: str, selector_value: str, unit: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<TemReporter>'
        "<Eos><EosMode>eosTEM</EosMode></Eos>"
        "<IlluminationSystem><ImageField>modeBrightField</ImageField></IlluminationSystem>"
        f"<ImageFormingSystem><ImageFormingMode>mode{mode}</ImageFormingMode>"
        f"<SelectorString>{selector_value} {unit}</SelectorString><ModeString>{mode}</ModeString>"
        f"<SelectorValue>{selector_value}</SelectorValue>"
        f"<SelectorUnitString>{unit}</SelectorUnitString></ImageFormingSystem>"
        "<ElectronGun><AccelerationVoltage>200000</AccelerationVoltage></ElectronGun>"
        "</TemReporter>"
    )


def _write_jeol_sightx(path, xml: str, camera_pixel_m: float) -> None:
    """SightX stores the camera pixel as an inch resolution and the magnification in XML."""
    dpi = 0.0254 / camera_pixel_m
    tifffile.imwrite(
        path,
        _image(9),
        description=xml,
        metadata=None,
        resolution=(dpi, dpi),
        resolutionunit=tifffile.RESUNIT.INCH,
        extratags=[(271, "s", 0, "JEOL Ltd.", False)],
    )


def test_jeol_sightx_magnification(tmp_path):
    path = tmp_path / "sightx.tif"
    _write_jeol_sightx(path, _jeol_sightx_xml("MAG", "8000", "x"), camera_pixel_m=15e-6)
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(15e-6 / 8000 * 1e9, rel=1e-5)  # 1.875 nm
    assert meta["pixel_size_source"] == "file:jeol-sightx-metadata"


def test_jeol_sightx_diffraction_is_reciprocal(tmp_path):
    path = tmp_path / "sightx_saed.tif"
    _write_jeol_sightx(path, _jeol_sightx_xml("DIFF", "60", "cm"), camera_pixel_m=15e-6)
    with pytest.raises(UnknownUnitsError, match="reciprocal"):
        read_micrograph(path)


def test_tvips_header_pixel_size_in_nm(tmp_path):
    path = tmp_path / "tvips.tif"
    v1 = np.zeros((), dtype=np.dtype(tifffile.TIFF.TVIPS_HEADER_V1))
    v1["Version"] = 2
    v2 = np.zeros((), dtype=np.dtype(tifffile.TIFF.TVIPS_HEADER_V2))
    v2["PixelSizeX"] = v2["PixelSizeY"] = 1.4208  # nm in version 2 headers
    v2["Magic"] = 0xAAAAAAAA
    blob = v1.tobytes() + v2.tobytes()
    tifffile.imwrite(path, _image(10), extratags=[(37706, "B", len(blob), blob, True)])
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(1.4208, rel=1e-6)
    assert meta["pixel_size_source"] == "file:tvips-metadata"


def _sis_blob(general_offset: int, x_cal: float, exponent: int) -> bytes:
    """OlympusSIS tag 33560: 60-byte header, one tag entry, the 112-byte 'general' block
    (pixel size = x_cal * 10**exponent m) at an absolute file offset."""
    header = struct.pack("<4s6xhhhhh6x32sH", b"SIS0", 30, 12, 5, 10, 124, b"Veleta", 1)
    entry = struct.pack("<hhI", 1, 1, general_offset)
    general = struct.pack("<10xhdd8xd2x34s32s", exponent, x_cal, x_cal, 50000.0, b"Veleta", b"TEM")
    return header + entry + general


def test_olympus_sis_pixel_size(tmp_path):
    path = tmp_path / "sis.tif"
    image = _image(11)
    blob = _sis_blob(0, 0.75, -9)
    tifffile.imwrite(path, image, extratags=[(33560, "B", len(blob), blob, True)])
    with tifffile.TiffFile(path) as tif:
        tag_offset = tif.pages.first.tags[33560].valueoffset
    blob = _sis_blob(tag_offset + 68, 0.75, -9)  # same length: same layout
    tifffile.imwrite(path, image, extratags=[(33560, "B", len(blob), blob, True)])
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.75, rel=1e-6)
    assert meta["pixel_size_source"] == "file:olympus-sis-metadata"


def test_fei_fib_image_without_scan_section_uses_hfw(tmp_path):
    path = tmp_path / "fei_fib.tif"
    fei_text = (
        "[User]\r\nDate=01/02/2024\r\n[IRBeam]\r\nHFW=3.2e-6\r\nVFW=2.0e-6\r\n"
        "[Image]\r\nResolutionX=64\r\nResolutionY=40\r\n"
    )
    tifffile.imwrite(path, _image(12), extratags=[(34682, "s", 0, fei_text, True)], **PRINT_72_DPI)
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(3.2e-6 / 64 * 1e9, rel=1e-6)  # 50 nm
    assert meta["pixel_size_source"] == "file:fei-metadata"


def test_zeiss_without_ap_pixel_size_uses_display_scale(tmp_path):
    """Without ap_image_pixel_size, the 4th unnamed CZ_SEM value is the pixel size (m) of a
    1024-pixel-wide image."""
    path = tmp_path / "zeiss.tif"
    zeiss_text = "0\r\n0\r\n0\r\n2.0e-9\r\nDP_WD\r\nWorking Distance = 4.5 mm\r\n"
    tifffile.imwrite(path, _image(13), extratags=[(34118, "s", 0, zeiss_text, True)])
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(2.0 * 1024 / SHAPE[1], rel=1e-6)  # 32 nm
    assert meta["pixel_size_source"] == "file:zeiss-sem-metadata"


# --------------------------------------------------------------------------------------
# Missing optional codec
# --------------------------------------------------------------------------------------
def _set_compression_tag(path, code: int) -> None:
    """Rewrite the Compression tag of an uncompressed little-endian TIFF in place, as a file
    compressed with that codec looks to a reader that cannot decode it."""
    with tifffile.TiffFile(path) as tif:
        entry = tif.pages.first.tags[259].offset
    raw = bytearray(path.read_bytes())
    assert struct.unpack("<HHI", raw[entry : entry + 8]) == (259, 3, 1)
    raw[entry + 8 : entry + 10] = struct.pack("<H", code)
    path.write_bytes(bytes(raw))


def _assert_names_imagecodecs(error: Exception, path) -> None:
    message = str(error)
    assert isinstance(error, MicrographError)
    assert isinstance(error, ImportError)
    assert f"'{path}'" in message
    assert "pip install imagecodecs" in message
    assert "truncated" not in message and "corrupt" not in message


@pytest.mark.skipif(
    importlib.util.find_spec("imagecodecs") is not None,
    reason="imagecodecs is installed; the simulated-absence test covers this",
)
@pytest.mark.parametrize(("code", "name"), [(7, "JPEG"), (5, "LZW")])
def test_codec_that_needs_imagecodecs_is_named(tmp_path, code, name):
    path = tmp_path / f"{name.lower()}.tif"
    tifffile.imwrite(
        path, _image(14), resolution=(10, 10), resolutionunit=tifffile.RESUNIT.CENTIMETER
    )
    _set_compression_tag(path, code)
    with pytest.raises(MissingDependencyError) as info:
        read_micrograph(path, pixel_size_nm=0.5)
    _assert_names_imagecodecs(info.value, path)
    assert name in str(info.value)


class _DecompressorsWithoutDeflate(Mapping):
    """tifffile's decoder table as it looks when the Deflate codec is not installed."""

    def __init__(self, real):
        self._real = real

    def __getitem__(self, code):
        if int(code) in (8, 32946):
            raise KeyError(
                f"<COMPRESSION.ADOBE_DEFLATE: {int(code)}> requires the 'imagecodecs' package"
            )
        return self._real[code]

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


def test_simulated_missing_codec_is_named(tmp_path, monkeypatch):
    path = tmp_path / "deflate.tif"
    tifffile.imwrite(path, _image(15), compression="zlib")
    assert read_micrograph(path, pixel_size_nm=0.5).image.shape == SHAPE
    monkeypatch.setattr(
        tifffile.TIFF, "DECOMPRESSORS", _DecompressorsWithoutDeflate(tifffile.TIFF.DECOMPRESSORS)
    )
    with pytest.raises(MissingDependencyError) as info:
        read_micrograph(path, pixel_size_nm=0.5)
    _assert_names_imagecodecs(info.value, path)
    assert "ADOBE_DEFLATE" in str(info.value)


def test_unknown_compression_with_imagecodecs_installed_is_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, _image(16))
    _set_compression_tag(path, 65000)  # no codec has this number
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "imagecodecs":
            return real_find_spec("json")  # pretend it is installed
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(CorruptFileError, match="65000"):
        read_micrograph(path, pixel_size_nm=0.5)
