"""Tests for etem_helpers.io: files are written by the real libraries (mrcfile, tifffile,
imageio) or, for DM3/DM4 and TIA SER, which no installed library can write, by the small
documented writers below (read back with RosettaSciIO's real readers)."""

from __future__ import annotations

import re
import struct

import mrcfile
import numpy as np
import pytest
import tifffile

from etem_helpers.io import (
    SUPPORTED_EXTENSIONS,
    CorruptFileError,
    EmptyImageError,
    InvalidPixelSizeError,
    InvalidPixelValuesError,
    Micrograph,
    MicrographError,
    MicrographNotFoundError,
    MissingCalibrationError,
    MissingDependencyError,
    NotAnImageError,
    UnknownUnitsError,
    UnsupportedFormatError,
    read_micrograph,
    write_micrograph,
)

REL = 1e-6


def _image(seed: int = 0, shape: tuple[int, int] = (24, 31)) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 10.0, size=shape).astype(np.float32)


def _name(path) -> str:
    return re.escape(path.name)


def write_ser(path, image: np.ndarray, pixel_size_m: tuple[float, float]) -> None:
    """Write a 2-D float32 image as a TIA ``.ser`` file (series version 0x0210, one element).

    Layout follows C. Boothroyd's description of the TIA series format ("Reading TIA
    files", also used by openNCEM's serReader and RosettaSciIO): a 30-byte header, one
    dimension record (size 1, a series of one image), the data- and tag-offset arrays,
    then the 2-D data element (x/y calibration in metres, data type 7 = float32, sizes,
    pixels stored bottom row first) followed by its time tag (0x4152).
    """
    image = np.ascontiguousarray(image, dtype="<f4")
    ny, nx = image.shape
    description = b"Number"
    header = struct.pack("<3H5I", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1, 0)
    header += struct.pack("<I", 1)  # NumberDimensions
    dimension = struct.pack("<IddII", 1, 0.0, 1.0, 0, len(description)) + description
    dimension += struct.pack("<I", 0)  # no units text
    offsets_at = len(header) + len(dimension)
    data_at = offsets_at + 8
    element = struct.pack(
        "<ddIddIHII", 0.0, pixel_size_m[0], 0, 0.0, pixel_size_m[1], 0, 7, nx, ny
    )
    element += image[::-1].tobytes()
    tag_at = data_at + len(element)
    tag = struct.pack("<HHI", 0x4152, 0, 0)
    header = header[:22] + struct.pack("<I", offsets_at) + header[26:]
    offsets = struct.pack("<II", data_at, tag_at)
    path.write_bytes(header + dimension + offsets + element + tag)


def _dm_int(version: int) -> str:
    return ">I" if version == 3 else ">Q"


def _dm_name(name: str) -> bytes:
    encoded = name.encode("latin-1")
    return struct.pack(">H", len(encoded)) + encoded


def _dm_data(name: str, info: tuple[int, ...], payload: bytes, version: int) -> bytes:
    n = _dm_int(version)
    body = b"%%%%" + struct.pack(n, len(info)) + b"".join(struct.pack(n, i) for i in info)
    body += payload
    size = b"" if version == 3 else struct.pack(">Q", len(body))
    return b"\x15" + _dm_name(name) + size + body


def _dm_group(name: str, entries: list[bytes], version: int) -> bytes:
    content = b"".join(entries)
    n = _dm_int(version)
    size = b"" if version == 3 else struct.pack(">Q", len(content) + 10)
    return b"\x14" + _dm_name(name) + struct.pack(">BB", 0, 0) + size + struct.pack(
        n, len(entries)
    ) + content


def _dm_float(name: str, value: float, version: int) -> bytes:
    return _dm_data(name, (6,), struct.pack("<f", value), version)


def _dm_long(name: str, value: int, version: int) -> bytes:
    return _dm_data(name, (3,), struct.pack("<l", value), version)


def _dm_text(name: str, text: str, version: int) -> bytes:
    codes = [ord(c) for c in text]
    return _dm_data(name, (20, 4, len(codes)), struct.pack(f"<{len(codes)}H", *codes), version)


def write_dm(path, data: np.ndarray, scale: float, units: str, version: int = 3) -> None:
    """Write a float32 image or stack as a Gatan DigitalMicrograph DM3 (or DM4) file.

    Follows the published DM3/DM4 tag-file layout (C. Boothroyd, "DM3 file format";
    G. Jefferis' DM3 notes; the DM4 changes of 8-byte lengths and tag sizes): a header
    (version, size, little-endian flag), then a tree of tag groups (0x14) and data tags
    (0x15, "%%%%", info array of type codes, little-endian payload). The image is in
    ``ImageList/<unnamed>/ImageData`` with ``Data`` (array of type 6 = float32, x fastest),
    ``DataType`` 2 (float32), ``Dimensions`` (x, y, z sizes) and ``Calibrations/Dimension``
    (``Origin``, ``Scale``, ``Units`` as a UTF-16 array) per axis in the same x, y, z order.
    No thumbnail is written.
    """
    v = version
    data = np.ascontiguousarray(data, dtype="<f4")
    sizes = data.shape[::-1]  # DM lists x first
    dimension = [
        _dm_group(
            "",
            [_dm_float("Origin", 0.0, v), _dm_float("Scale", scale, v), _dm_text("Units", units, v)],
            v,
        )
        for _ in sizes
    ]
    brightness = [_dm_float("Origin", 0.0, v), _dm_float("Scale", 1.0, v), _dm_text("Units", "", v)]
    image_data = _dm_group(
        "ImageData",
        [
            _dm_group(
                "Calibrations",
                [_dm_group("Brightness", brightness, v), _dm_group("Dimension", dimension, v)],
                v,
            ),
            _dm_data("Data", (20, 6, data.size), data.tobytes(), v),
            _dm_long("DataType", 2, v),
            _dm_group("Dimensions", [_dm_long("", n, v) for n in sizes], v),
        ],
        v,
    )
    item = _dm_group("", [image_data, _dm_group("ImageTags", [], v), _dm_text("Name", "t", v)], v)
    root = struct.pack(">BB", 0, 1) + struct.pack(_dm_int(v), 1) + _dm_group("ImageList", [item], v)
    body = root + bytes(8)
    path.write_bytes(
        struct.pack(">I", v) + struct.pack(_dm_int(v), len(body)) + struct.pack(">I", 1) + body
    )


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------
def test_mrc_round_trip_via_write_micrograph(tmp_path):
    image = _image()
    path = write_micrograph(
        tmp_path / "sub" / "a.mrc", image, 0.0437, metadata={"kv": 300, "note": "a b  "}
    )
    result = read_micrograph(path)
    assert isinstance(result, Micrograph)
    read_image, pixel_size_nm, meta = result
    assert pixel_size_nm == pytest.approx(0.0437, rel=REL)
    np.testing.assert_array_equal(read_image, image)
    assert read_image.dtype == np.float32
    assert meta["pixel_size_source"] == "file:mrc-header"
    assert meta["format"] == "mrc"
    assert meta["shape"] == image.shape
    assert meta["path"] == str(path)
    assert meta["user_metadata"] == {"kv": 300, "note": "a b  "}


def test_mrc_written_by_mrcfile_with_voxel_size_in_angstrom(tmp_path):
    path = tmp_path / "direct.mrc"
    data = np.random.default_rng(1).integers(0, 3000, size=(20, 18)).astype(np.int16)
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 1.85  # Å
    image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.185, rel=REL)
    np.testing.assert_array_equal(image, data.astype(np.float32))
    assert meta["original_dtype"] == "int16"


def test_tiff_round_trip_via_write_micrograph(tmp_path):
    image = _image(2)
    path = write_micrograph(tmp_path / "a.tif", image, 0.2113, metadata={"sample": "Au/C"})
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.2113, rel=REL)
    np.testing.assert_array_equal(read_image, image)
    assert meta["pixel_size_source"] == "file:imagej"
    assert meta["user_metadata"] == {"sample": "Au/C"}
    # what Fiji reads: ImageJ unit and XResolution in pixels per unit
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == "nm"
        numerator, denominator = tif.pages.first.tags["XResolution"].value
    assert denominator / numerator == pytest.approx(0.2113, rel=REL)


@pytest.mark.parametrize(
    ("unit", "pixel_size_in_unit", "expected_nm"),
    [
        ("nm", 0.31, 0.31),
        ("micron", 0.0025, 2.5),
        ("\\u00B5m", 0.0025, 2.5),
        ("A", 1.7, 0.17),
        ("angstrom", 1.7, 0.17),
    ],
)
def test_tiff_imagej_units_written_by_tifffile(tmp_path, unit, pixel_size_in_unit, expected_nm):
    path = tmp_path / "ij.tif"
    image = _image(3)
    tifffile.imwrite(
        path,
        image,
        imagej=True,
        resolution=(1 / pixel_size_in_unit, 1 / pixel_size_in_unit),
        metadata={"unit": unit},
    )
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(expected_nm, rel=REL)
    assert meta["pixel_size_source"] == "file:imagej"
    np.testing.assert_array_equal(read_image, image)


def test_tiff_plain_resolution_in_centimetres(tmp_path):
    path = tmp_path / "cm.tif"
    image = (_image(4) * 100).astype(np.uint16)
    pixels_per_cm = 1e7 / 0.125  # 0.125 nm per pixel
    tifffile.imwrite(
        path,
        image,
        resolution=(pixels_per_cm, pixels_per_cm),
        resolutionunit=tifffile.RESUNIT.CENTIMETER,
    )
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.125, rel=REL)
    assert meta["pixel_size_source"] == "file:tiff-resolution"
    assert meta["original_dtype"] == "uint16"
    np.testing.assert_array_equal(read_image, image.astype(np.float32))


def test_tiff_fei_metadata_pixel_width_in_metres(tmp_path):
    path = tmp_path / "fei.tif"
    fei_text = (
        "[User]\r\nDate=01/02/2024\r\n[Beam]\r\nHV=300000\r\n"
        "[Scan]\r\nPixelWidth=2.5e-11\r\nPixelHeight=2.5e-11\r\n"
    )
    tifffile.imwrite(
        path,
        _image(5),
        resolution=(72, 72),
        resolutionunit=tifffile.RESUNIT.INCH,
        extratags=[(34682, "s", 0, fei_text, True)],
    )
    _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.025, rel=REL)
    assert meta["pixel_size_source"] == "file:fei-metadata"
    assert meta["voltage_kv"] == pytest.approx(300.0)


def test_tiff_72_dpi_is_a_print_resolution_not_a_calibration(tmp_path):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, _image(6), resolution=(72, 72), resolutionunit=tifffile.RESUNIT.INCH)
    with pytest.raises(MissingCalibrationError, match=_name(path)):
        read_micrograph(path)


def test_non_square_pixels_use_x_and_warn(tmp_path):
    path = tmp_path / "rect.tif"
    tifffile.imwrite(
        path,
        _image(7),
        resolution=(1e7 / 0.10, 1e7 / 0.12),
        resolutionunit=tifffile.RESUNIT.CENTIMETER,
    )
    with pytest.warns(UserWarning, match="non-square"):
        _, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.10, rel=REL)
    assert meta["pixel_size_y_nm"] == pytest.approx(0.12, rel=REL)


def test_ser_written_by_documented_writer(tmp_path):
    path = tmp_path / "tia.ser"
    image = _image(8, shape=(16, 21))
    write_ser(path, image, pixel_size_m=(4.2e-11, 4.2e-11))
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert meta["format"] == "ser"
    assert meta["pixel_size_source"] == "file:rosettasciio"
    assert pixel_size_nm == pytest.approx(0.042, rel=REL)
    np.testing.assert_array_equal(read_image, image)


@pytest.mark.parametrize(
    ("version", "scale", "units", "expected_nm"),
    [(3, 1.5, "Å", 0.15), (3, 0.0213, "nm", 0.0213), (4, 0.002, "µm", 2.0), (4, 35.0, "pm", 0.035)],
)
def test_dm_written_by_documented_writer(tmp_path, version, scale, units, expected_nm):
    path = tmp_path / f"a.dm{version}"
    image = _image(12, shape=(13, 17))
    write_dm(path, image, scale, units, version=version)
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert meta["format"] == f"dm{version}"
    assert meta["pixel_size_source"] == "file:rosettasciio"
    assert pixel_size_nm == pytest.approx(expected_nm, rel=REL)
    np.testing.assert_array_equal(read_image, image)


def test_dm_stack_needs_frame(tmp_path):
    path = tmp_path / "stack.dm3"
    stack = np.stack([_image(i, shape=(8, 9)) for i in range(3)])
    write_dm(path, stack, 0.5, "nm")
    with pytest.raises(NotAnImageError, match=_name(path)) as info:
        read_micrograph(path)
    assert "(3, 8, 9)" in str(info.value)
    image, pixel_size_nm, _ = read_micrograph(path, frame=2)
    np.testing.assert_array_equal(image, stack[2])
    assert pixel_size_nm == pytest.approx(0.5, rel=REL)


def test_dm_uncalibrated_and_reciprocal_units(tmp_path):
    plain = tmp_path / "plain.dm3"
    write_dm(plain, _image(), 1.0, "")
    with pytest.raises(MissingCalibrationError, match=_name(plain)):
        read_micrograph(plain)
    fft = tmp_path / "fft.dm3"
    write_dm(fft, _image(), 0.02, "1/nm")
    with pytest.raises(UnknownUnitsError, match=_name(fft)) as info:
        read_micrograph(fft)
    assert "1/nm" in str(info.value)


def test_emd_without_h5py_says_what_to_install(tmp_path):
    try:
        import h5py  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("h5py is installed; the EMD round trip test covers this format")
    path = tmp_path / "a.emd"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(MissingDependencyError, match=_name(path)) as info:
        read_micrograph(path)
    assert "h5py" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_emd_ncem_round_trip_in_angstrom(tmp_path):
    pytest.importorskip("h5py")
    from rsciio.emd import file_writer

    path = tmp_path / "ncem.emd"
    image = _image(9, shape=(12, 14))
    signal = {
        "data": image,
        "axes": [
            {"name": "y", "size": 12, "scale": 0.9, "offset": 0.0, "units": "Å",
             "navigate": False},
            {"name": "x", "size": 14, "scale": 0.9, "offset": 0.0, "units": "Å",
             "navigate": False},
        ],
        "metadata": {"General": {"title": "test"}, "Signal": {"signal_type": ""}},
        "original_metadata": {},
    }
    file_writer(str(path), signal)
    read_image, pixel_size_nm, meta = read_micrograph(path)
    assert pixel_size_nm == pytest.approx(0.09, rel=REL)
    np.testing.assert_allclose(read_image, image)


# --------------------------------------------------------------------------------------
# Raster formats and the pixel_size_nm argument
# --------------------------------------------------------------------------------------
def test_png_rgba_with_identical_channels_reads_channel_0(tmp_path):
    import imageio.v3 as iio

    grey = np.random.default_rng(10).integers(0, 256, size=(15, 17)).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)
    path = tmp_path / "rgba.png"
    iio.imwrite(path, rgba)
    image, pixel_size_nm, meta = read_micrograph(path, pixel_size_nm=0.5)
    np.testing.assert_array_equal(image, grey.astype(np.float32))
    assert pixel_size_nm == 0.5
    assert meta["pixel_size_source"] == "argument"
    assert meta["format"] == "png"


def test_coloured_png_is_converted_to_grey_with_a_warning(tmp_path):
    import imageio.v3 as iio

    rgb = np.zeros((8, 9, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / "red.png"
    iio.imwrite(path, rgb)
    with pytest.warns(UserWarning, match="colour"):
        image, _, meta = read_micrograph(path, pixel_size_nm=1.5)
    assert meta["colour_converted"] is True
    np.testing.assert_allclose(image, 200 * 0.2125, rtol=1e-6)


def test_argument_overrides_file_calibration_and_keeps_it(tmp_path):
    path = write_micrograph(tmp_path / "a.mrc", _image(), 0.1)
    _, pixel_size_nm, meta = read_micrograph(path, pixel_size_nm=0.3)
    assert pixel_size_nm == 0.3
    assert meta["pixel_size_source"] == "argument"
    assert meta["file_pixel_size_nm"] == pytest.approx(0.1, rel=REL)


def test_real_png_sample_reads_as_2d_float32(shared_real_dir):
    path = sorted((shared_real_dir / "images").glob("*.png"))[0]
    image, pixel_size_nm, meta = read_micrograph(path, require_calibration=False)
    assert image.ndim == 2
    assert image.dtype == np.float32
    assert pixel_size_nm is None
    assert meta["pixel_size_source"] == "none"


# --------------------------------------------------------------------------------------
# Bad input: exception type AND the file name in the message
# --------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.mrc"
    with pytest.raises(MicrographNotFoundError, match=_name(path)) as info:
        read_micrograph(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, MicrographError)


def test_unsupported_extension_lists_supported_ones(tmp_path):
    path = tmp_path / "image.xyz"
    path.write_bytes(b"abc")
    with pytest.raises(UnsupportedFormatError, match=_name(path)) as info:
        read_micrograph(path)
    assert all(ext in str(info.value) for ext in SUPPORTED_EXTENSIONS)


def test_truncated_mrc(tmp_path):
    path = write_micrograph(tmp_path / "cut.mrc", _image(), 0.1)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) - 200])
    with pytest.raises(CorruptFileError, match=_name(path)) as info:
        read_micrograph(path)
    assert info.value.__cause__ is not None


def test_random_bytes_tiff(tmp_path):
    path = tmp_path / "noise.tif"
    path.write_bytes(np.random.default_rng(11).integers(0, 256, size=4096).astype(np.uint8))
    with pytest.raises(CorruptFileError, match=_name(path)) as info:
        read_micrograph(path)
    assert info.value.__cause__ is not None


def _write_stack(path, n_frames=3):
    stack = np.stack([np.full((10, 12), float(i), dtype=np.float32) for i in range(n_frames)])
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.voxel_size = 2.0
    return stack


def test_stack_without_frame(tmp_path):
    path = tmp_path / "stack.mrcs"
    _write_stack(path)
    with pytest.raises(NotAnImageError, match=_name(path)) as info:
        read_micrograph(path)
    assert "(3, 10, 12)" in str(info.value)
    assert "frame=" in str(info.value)


def test_stack_with_frame_index_and_mean_and_sum(tmp_path):
    path = tmp_path / "stack.mrcs"
    stack = _write_stack(path)
    image, pixel_size_nm, meta = read_micrograph(path, frame=1)
    np.testing.assert_array_equal(image, stack[1])
    assert pixel_size_nm == pytest.approx(0.2, rel=REL)
    assert meta["frame"] == 1
    assert meta["n_frames"] == 3
    np.testing.assert_allclose(read_micrograph(path, frame="mean").image, stack.mean(axis=0))
    np.testing.assert_allclose(read_micrograph(path, frame="sum").image, stack.sum(axis=0))
    np.testing.assert_array_equal(read_micrograph(path, frame=-1).image, stack[2])


def test_stack_frame_out_of_range(tmp_path):
    path = tmp_path / "stack.mrcs"
    _write_stack(path)
    with pytest.raises(NotAnImageError, match=_name(path)):
        read_micrograph(path, frame=3)


def test_multipage_tiff_is_a_stack(tmp_path):
    path = tmp_path / "pages.tif"
    stack = np.stack([_image(i, shape=(9, 10)) for i in range(4)])
    tifffile.imwrite(path, stack, imagej=True, resolution=(10, 10), metadata={"unit": "nm"})
    with pytest.raises(NotAnImageError, match=_name(path)):
        read_micrograph(path)
    image, pixel_size_nm, _ = read_micrograph(path, frame=2)
    np.testing.assert_array_equal(image, stack[2])
    assert pixel_size_nm == pytest.approx(0.1, rel=REL)


def test_one_dimensional_data(tmp_path):
    path = tmp_path / "line.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(30, dtype=np.float32).reshape(1, 30))
        mrc.voxel_size = 1.0
    with pytest.raises(NotAnImageError, match=_name(path)):
        read_micrograph(path)


def test_four_dimensional_data(tmp_path):
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 8, 9), dtype=np.float32), imagej=True)
    with pytest.raises(NotAnImageError, match=_name(path)):
        read_micrograph(path, frame=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels(tmp_path, bad):
    path = tmp_path / f"bad_{bad}.tif"
    image = _image()
    image[3, 4] = bad
    image[5, 6] = bad
    tifffile.imwrite(path, image, imagej=True, resolution=(10, 10), metadata={"unit": "nm"})
    with pytest.raises(InvalidPixelValuesError, match=_name(path)) as info:
        read_micrograph(path)
    assert "2 of" in str(info.value)
    with pytest.warns(UserWarning, match="filled 2"):
        filled, _, meta = read_micrograph(path, nan_policy="fill")
    assert np.isfinite(filled).all()
    assert meta["n_filled_pixels"] == 2


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_empty_array(tmp_path):
    path = tmp_path / "empty.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((0, 5), dtype=np.float32))
        mrc.voxel_size = 1.0
    with pytest.raises(EmptyImageError, match=_name(path)):
        read_micrograph(path)


def test_png_has_no_calibration(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "plain.png"
    iio.imwrite(path, np.zeros((6, 7), dtype=np.uint8))
    with pytest.raises(MissingCalibrationError, match=_name(path)) as info:
        read_micrograph(path)
    assert "pixel_size_nm=" in str(info.value)
    image, pixel_size_nm, meta = read_micrograph(path, require_calibration=False)
    assert pixel_size_nm is None
    assert meta["pixel_size_source"] == "none"
    assert image.shape == (6, 7)


def test_mrc_with_voxel_size_zero_has_no_calibration(tmp_path):
    path = tmp_path / "zero.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_image())
        mrc.voxel_size = 0.0
    with pytest.raises(MissingCalibrationError, match=_name(path)):
        read_micrograph(path)
    _, pixel_size_nm, meta = read_micrograph(path, require_calibration=False)
    assert pixel_size_nm is None
    assert meta["pixel_size_source"] == "none"


def test_imagej_unit_pixel_is_unknown(tmp_path):
    path = tmp_path / "pixel.tif"
    tifffile.imwrite(path, _image(), imagej=True, resolution=(2, 2), metadata={"unit": "pixel"})
    with pytest.raises(UnknownUnitsError, match=_name(path)) as info:
        read_micrograph(path)
    assert "'pixel'" in str(info.value)
    _, pixel_size_nm, meta = read_micrograph(path, require_calibration=False)
    assert pixel_size_nm is None
    assert "pixel" in meta["calibration_error"]


def test_resolution_unit_none_with_scale_is_unknown(tmp_path):
    path = tmp_path / "nounit.tif"
    tifffile.imwrite(path, _image(), resolution=(3.5, 3.5), resolutionunit=tifffile.RESUNIT.NONE)
    with pytest.raises(UnknownUnitsError, match=_name(path)):
        read_micrograph(path)


@pytest.mark.parametrize("bad", [0, -0.1, np.nan, np.inf, "0.1", True])
def test_bad_pixel_size_argument(tmp_path, bad):
    path = write_micrograph(tmp_path / "ok.tif", _image(), 0.1)
    with pytest.raises(InvalidPixelSizeError, match=_name(path)) as info:
        read_micrograph(path, pixel_size_nm=bad)
    assert "pixel_size_nm" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_write_refuses_to_overwrite(tmp_path):
    path = write_micrograph(tmp_path / "a.tif", _image(), 0.1)
    with pytest.raises(FileExistsError, match=_name(path)):
        write_micrograph(path, _image(1), 0.2)
    assert read_micrograph(path).pixel_size_nm == pytest.approx(0.1, rel=REL)
    write_micrograph(path, _image(1), 0.2, overwrite=True)
    assert read_micrograph(path).pixel_size_nm == pytest.approx(0.2, rel=REL)


@pytest.mark.parametrize(
    ("name", "image", "pixel_size_nm", "error"),
    [
        ("a.png", np.zeros((4, 4)), 0.1, UnsupportedFormatError),
        ("a.mrc", np.zeros((2, 4, 4)), 0.1, NotAnImageError),
        ("a.mrc", np.full((4, 4), np.nan), 0.1, InvalidPixelValuesError),
        ("a.tif", np.zeros((4, 4)), -1.0, InvalidPixelSizeError),
    ],
)
def test_write_validates_input(tmp_path, name, image, pixel_size_nm, error):
    path = tmp_path / name
    with pytest.raises(error, match=_name(path)):
        write_micrograph(path, image, pixel_size_nm)
    assert not path.exists()


def test_complex_mrc_reads_magnitude_with_warning(tmp_path):
    path = tmp_path / "complex.mrc"
    data = (np.ones((6, 8)) * (3 + 4j)).astype(np.complex64)
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 1.0
    with pytest.warns(UserWarning, match="complex"):
        image, _, _ = read_micrograph(path)
    np.testing.assert_allclose(image, 5.0)


# ---------------------------------------------------------------- reliability (issue 9)


@pytest.mark.parametrize("name", ["x.tif", "x.mrc"])
@pytest.mark.parametrize("bad_pixel_size", [5e-11, 1e6])
def test_failed_overwrite_keeps_the_good_file(tmp_path, name, bad_pixel_size):
    """A pixel size the file cannot hold is refused before the good file is touched."""
    image = _image()
    path = write_micrograph(tmp_path / name, image, 0.5)
    before = path.read_bytes()
    with pytest.raises(InvalidPixelSizeError, match=r"plausible range.*nm per pixel"):
        write_micrograph(path, image, bad_pixel_size, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left
    again = read_micrograph(path)
    assert again.pixel_size_nm == pytest.approx(0.5, rel=REL)


def test_failed_write_of_bad_pixels_keeps_the_good_file(tmp_path):
    path = write_micrograph(tmp_path / "x.tif", _image(), 0.5)
    before = path.read_bytes()
    bad = _image()
    bad[3, 4] = np.nan
    with pytest.raises(InvalidPixelValuesError):
        write_micrograph(path, bad, 0.5, overwrite=True)
    assert path.read_bytes() == before


def test_a_pixel_size_the_format_cannot_store_is_refused(tmp_path, monkeypatch):
    """The written file is read back before it replaces the target: a calibration that would
    read back differently (here: a writer that drops it) is refused, nothing is left."""
    import etem_helpers.io.micrograph as micrograph

    def lossy(path, data, *, pixel_size_nm, user_json):
        tifffile.imwrite(path, data)  # no calibration stored

    monkeypatch.setattr(micrograph, "_write_tiff", lossy)
    with pytest.raises(InvalidPixelSizeError, match="cannot be stored"):
        write_micrograph(tmp_path / "x.tif", _image(), 0.5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pixel_size_nm", [1e-4, 0.0123456, 3.7, 1e4])
def test_plausible_pixel_sizes_read_back(tmp_path, pixel_size_nm):
    for name in ("a.tif", "a.mrc"):
        path = write_micrograph(tmp_path / name, _image(), pixel_size_nm, overwrite=True)
        assert read_micrograph(path).pixel_size_nm == pytest.approx(pixel_size_nm, rel=1e-5)


def test_implausible_file_calibration_warns_naming_the_file(tmp_path):
    path = tmp_path / "tiny_scale.tif"
    # ImageJ calibration of 2e-7 pm = 2e-10 nm per pixel (a unit error in some export).
    tifffile.imwrite(path, _image(), imagej=True, resolution=(5e6, 5e6), metadata={"unit": "pm"})
    with pytest.warns(UserWarning, match=r"tiny_scale\.tif.*2e-10 nm/px.*plausible"):
        micrograph = read_micrograph(path)
    assert micrograph.metadata["implausible_pixel_size"] is True
    assert micrograph.pixel_size_nm == pytest.approx(2e-10, rel=1e-5)


def test_unreadable_png_says_it_is_not_a_readable_png(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not a PNG at all")
    with pytest.raises(CorruptFileError, match=r"broken\.png.*not a readable PNG file") as info:
        read_micrograph(path, pixel_size_nm=0.5)
    assert "backend" not in str(info.value)


def test_all_nan_file_with_fill_says_there_is_nothing_to_fill_from(tmp_path):
    path = tmp_path / "nan.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.full((16, 16), np.nan, np.float32))
        mrc.voxel_size = 5.0
    for policy in ("fill", "raise"):
        with pytest.raises(InvalidPixelValuesError, match="nothing to fill from"):
            read_micrograph(path, nan_policy=policy)


def test_values_beyond_float32_range_are_not_called_inf(tmp_path):
    huge = _image().astype(np.float64) * 1e40
    with pytest.raises(InvalidPixelValuesError, match="beyond float32's range.*rescale"):
        write_micrograph(tmp_path / "big.tif", huge, 0.5)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, huge, imagej=False, resolution=(2.0, 2.0), resolutionunit=5)
    with pytest.raises(InvalidPixelValuesError, match=r"big\.tif.*beyond float32's range"):
        read_micrograph(path)


def test_bytes_paths_are_accepted(tmp_path):
    path = bytes(tmp_path / "b.mrc")
    written = write_micrograph(path, _image(), 0.25)
    assert written == tmp_path / "b.mrc"
    assert read_micrograph(path).pixel_size_nm == pytest.approx(0.25, rel=REL)
    with pytest.raises(TypeError, match="path must be a path"):
        read_micrograph(42)


def test_write_to_a_directory_is_refused(tmp_path):
    target = tmp_path / "folder.tif"
    target.mkdir()
    with pytest.raises(MicrographError, match="directory"):
        write_micrograph(target, _image(), 0.5, overwrite=True)


def test_replace_atomically_keeps_the_target_when_the_write_fails(tmp_path):
    from etem_helpers.io import replace_atomically

    target = tmp_path / "table.csv"
    target.write_text("good")
    with pytest.raises(RuntimeError), replace_atomically(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "good" and sorted(tmp_path.iterdir()) == [target]
    with replace_atomically(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".csv"
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]


def test_replace_atomically_gives_ordinary_permissions(tmp_path):
    """A temporary file is private (0600); the written file must not stay so."""
    import os
    import stat

    from etem_helpers.io import replace_atomically

    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.json"
        with replace_atomically(fresh) as tmp:
            tmp.write_text("{}")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        kept.chmod(0o640)
        with replace_atomically(kept) as tmp:
            tmp.write_text("[]")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(umask)


def test_read_settings_merges_over_defaults_and_refuses_typos(tmp_path):
    from etem_helpers.io import read_settings

    defaults = {"epochs": 10, "nested": {"a": 1}}
    settings, origin = read_settings({"epochs": 3}, defaults, what="GAN configuration")
    assert settings == {"epochs": 3, "nested": {"a": 1}} and origin == "the GAN configuration"
    settings["nested"]["a"] = 2
    assert defaults["nested"]["a"] == 1  # a deep copy: the defaults never change
    assert read_settings(None, defaults)[0] == defaults
    path = tmp_path / "c.json"
    path.write_text('{"epoch": 3}')
    with pytest.raises(ValueError, match=r"Unknown keys \['epoch'\] in .*c.json"):
        read_settings(path, defaults)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_settings(path, defaults)
    path.write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_settings(path, defaults)
    with pytest.raises(FileNotFoundError, match="GAN configuration file"):
        read_settings(tmp_path / "missing.json", defaults, what="GAN configuration")
