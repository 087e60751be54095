"""Tests for etem_helpers.datasets.real (no network: the cache is filled from a local copy)."""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from etem_helpers.datasets import real as real_data

REAL_COPY = Path(__file__).resolve().parents[2] / "shared" / "real" / "msa-em-sintering"
UNREACHABLE = "http://127.0.0.1:9/"  # discard port: connection refused, never the internet


@pytest.fixture(scope="module")
def real_copy() -> Path:
    if not (REAL_COPY / "images").is_dir():
        pytest.skip(f"local copy of the real sintering set not present at {REAL_COPY}")
    return REAL_COPY


@pytest.fixture()
def local_server():
    """Serve a folder over HTTP on 127.0.0.1 (a stand-in for the source, no internet)."""
    servers = []

    def serve(directory: Path) -> str:
        handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *args, **kwargs: None
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_registry_lists_twenty_pairs():
    registry = real_data.sintering_registry()
    assert len(registry) == 40
    assert all(checksum.startswith("sha256:") and len(checksum) == 71
               for checksum in registry.values())
    for n in range(20):
        assert f"images/image_{n}.png" in registry
        assert f"labels/label_{n}.png" in registry


def test_registry_hashes_match_local_copy(real_copy):
    assert real_data.compute_registry(real_copy) == real_data.sintering_registry()


def test_populate_cache_then_load(real_copy, tmp_path):
    cached = real_data.populate_cache_from(real_copy, tmp_path)
    assert len(cached) == 40 and all(path.is_file() for path in cached)
    # an unreachable base URL proves that nothing is downloaded when the cache is complete
    pairs = real_data.load_sintering(cache_dir=tmp_path, base_url=UNREACHABLE)
    assert len(pairs) == 20
    names = [name for _, _, name in pairs]
    assert names == [f"image_{n}" for n in range(20)]
    for image, mask, name in pairs:
        assert image.dtype == np.float32 and image.shape == (512, 512)
        assert mask.dtype == bool and mask.shape == image.shape
        assert 0.01 < mask.mean() < 0.9, name  # non-trivial masks
        assert image.std() > 1.0, name
    # particles are darker than the support in bright field
    image, mask, _ = pairs[0]
    assert image[mask].mean() < image[~mask].mean()


def test_samples_from_a_local_copy_match_the_cache_and_write_nothing(real_copy, tmp_path):
    real_data.populate_cache_from(real_copy, tmp_path / "cache")
    ids = ("image_1", "image_7")
    cached = real_data.sintering_samples(0.5, ids=ids, cache_dir=tmp_path / "cache")
    direct = real_data.sintering_samples(0.5, ids=ids, source_dir=real_copy,
                                         cache_dir=tmp_path / "unused")
    assert [s[0] for s in direct] == list(ids)
    for a, b in zip(cached, direct, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2])
    assert not (tmp_path / "unused").exists()


def test_populate_rejects_modified_file(real_copy, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(real_copy, source)
    (source / "labels" / "label_3.png").chmod(0o644)
    with open(source / "labels" / "label_3.png", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ValueError, match="label_3.png"):
        real_data.populate_cache_from(source, tmp_path / "cache")


def test_fetch_downloads_and_verifies(real_copy, tmp_path, local_server):
    pairs = real_data.fetch_sintering(cache_dir=tmp_path, base_url=local_server(real_copy))
    assert len(pairs) == 20
    assert pairs[10][0].name == "image_10.png" and pairs[10][1].name == "label_10.png"
    assert (tmp_path / "msa-em-sintering" / "labels" / "label_19.png").is_file()

    tampered = tmp_path / "tampered"
    shutil.copytree(real_copy, tampered)
    (tampered / "images" / "image_0.png").chmod(0o644)
    with open(tampered / "images" / "image_0.png", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ValueError, match="image_0.png"):
        real_data.fetch_sintering(cache_dir=tmp_path / "other", base_url=local_server(tampered))


def test_fetch_offline_raises_clear_error(tmp_path):
    with pytest.raises(real_data.RealDataUnavailableError) as info:
        real_data.fetch_sintering(cache_dir=tmp_path, base_url=UNREACHABLE)
    message = str(info.value)
    assert "populate_cache_from" in message and "ETEM_DATA_DIR" in message
    assert "carry on" in message


def test_cache_dir_from_environment(monkeypatch, tmp_path, real_copy):
    monkeypatch.setenv("ETEM_DATA_DIR", str(tmp_path / "env_cache"))
    assert real_data.data_cache_dir() == tmp_path / "env_cache"
    real_data.populate_cache_from(real_copy)  # cache_dir=None: follows the variable
    pairs = real_data.fetch_sintering(base_url=UNREACHABLE)
    assert all(tmp_path / "env_cache" in image.parents for image, _ in pairs)
    monkeypatch.delenv("ETEM_DATA_DIR")
    assert "etem-notebooks" in str(real_data.data_cache_dir())


def test_attribution_and_unknown_pixel_size():
    assert "doi:10.69761/HDTA8338" in real_data.ATTRIBUTION
    assert "CC-BY-4.0" in real_data.ATTRIBUTION
    assert real_data.SINTERING_COMMIT in real_data.SINTERING_BASE_URL
    assert real_data.SINTERING_PIXEL_SIZE_NM is None
