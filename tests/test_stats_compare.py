"""Comparison table and report on small synthetic label maps."""

import numpy as np
import pytest
from skimage.draw import disk

from etem_helpers.stats import ComparisonImage, compare_methods, summarize_comparison, write_report
from etem_helpers.stats.compare import REPORT_MARKER


def _labels(centres, radius, shape=(96, 96)):
    out = np.zeros(shape, dtype=np.int32)
    for k, (r, c) in enumerate(centres, start=1):
        rr, cc = disk((r, c), radius, shape=shape)
        out[rr, cc] = k
    return out


def _images(n=4):
    rng = np.random.default_rng(0)
    images = []
    for i in range(n):
        centres = [(20 + 25 * a + rng.integers(-2, 3), 20 + 25 * b + rng.integers(-2, 3))
                   for a in range(3) for b in range(3)]
        ref = _labels(centres, 7)
        bigger = _labels(centres[1:] + [(88, 88)], 8)  # misses one, adds one at the edge
        images.append(ComparisonImage(f"img{i}", ref, {"exact": ref.copy(), "dilated": bigger},
                                      pixel_size_nm=0.5))
    return images


def test_compare_methods_tidy_table_and_counts():
    tables = compare_methods(_images(), quantities=("diameter_nm",))
    det = tables.detections.set_index(["image", "method"])
    assert tables.methods == ("exact", "dilated")
    assert (det.xs("exact", level="method")[["tp", "fp", "fn"]].to_numpy() == [9, 0, 0]).all()
    assert (det.xs("dilated", level="method")[["tp", "fp", "fn"]].to_numpy() == [8, 1, 1]).all()
    p = tables.particles
    exact = p[(p["method"] == "exact")]
    assert exact["matched"].all()
    np.testing.assert_allclose(exact["measured"], exact["reference"])
    dil = p[(p["method"] == "dilated") & p["matched"]]
    # Radius 8 vs 7 px at 0.5 nm/px: diameters about 1 nm larger.
    assert (dil["measured"] - dil["reference"]).mean() == pytest.approx(1.0, abs=0.15)
    fp = p[p["status"] == "fp"]
    assert fp["reference"].isna().all() and (fp["true_id"] == -1).all()
    fn = p[p["status"] == "fn"]
    assert fn["measured"].isna().all() and (fn["pred_id"] == -1).all()


def test_summarize_comparison_intervals():
    tables = compare_methods(_images(6), quantities=("diameter_nm",))
    s = summarize_comparison(tables, n_resamples=300).set_index(["method", "metric"])
    assert s.loc[("exact", "f1"), "estimate"] == 1.0
    assert s.loc[("dilated", "f1"), "estimate"] == pytest.approx(16 / 18)
    bias = s.loc[("dilated", "bias")]
    assert bias["ci_low"] <= bias["estimate"] <= bias["ci_high"]
    assert bias["n_images"] == 6
    assert s.loc[("exact", "mae"), "estimate"] == 0.0
    # Replication intervals (bootstrap-t) bracket the estimate of every pooled ratio.
    for metric in ("f1", "bias", "mae", "rmse"):
        row = s.loc[("dilated", metric)]
        assert row["rep_low"] <= row["estimate"] <= row["rep_high"], metric
    assert np.isnan(s.loc[("dilated", "loa_low"), "rep_low"])


def test_write_report_files_and_overwrite_rules(tmp_path):
    tables = compare_methods(_images(3), quantities=("diameter_nm", "roundness"))
    out = tmp_path / "report"
    written = write_report(tables, out, n_resamples=200)
    for key in ("particles", "summary", "forest", "size_distributions", "markdown",
                "bland_altman:dilated"):
        assert written[key].exists() and written[key].stat().st_size > 0
    assert (out / REPORT_MARKER).exists()
    assert "| dilated | f1 |" in written["markdown"].read_text()
    write_report(tables, out, n_resamples=200)  # its own folder: may overwrite
    (out / "notes.txt").write_text("mine")
    write_report(tables, out, n_resamples=200)  # a foreign file it does not touch is fine
    assert (out / "notes.txt").read_text() == "mine"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "summary.csv").write_text("precious")
    with pytest.raises(FileExistsError, match="not written by write_report"):
        write_report(tables, foreign)
    assert (foreign / "summary.csv").read_text() == "precious"
    (out / REPORT_MARKER).write_text('{"files": ["particles.csv"]}')
    with pytest.raises(FileExistsError, match="did not write"):
        write_report(tables, out)
