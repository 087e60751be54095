"""Burned-in scale bars, labels and data bars: calibration error, detection, false positives, time.

Usage::

    python benchmarks/bench_annotations.py [--n-images 60] [--size 512] [--seed 0]
        [--real-dir ../shared/real/msa-em-sintering] [--n-analyze 6] [--json out.json]

Prints, on ``--n-images`` simulated low-magnification micrographs (``--size`` px; backgrounds
from ``simulate_micrograph`` with ``sample_params``) with a bar and its label burned in with real
fonts (:func:`etem_helpers.simulate.overlays.burn_in_scale_bar`: matplotlib text, DejaVu Sans;
info strips with Pillow) of random length (10-45 % of the width), corner, colour, thickness,
font size, end ticks, label above/below, sub-pixel offset, with (30 %) or without an SEM-like
info strip, 8-bit export (80 %) or float:

* detection rate (a unique scale bar found) and the pixel-size error |measured/true - 1|
  (median, 95th percentile, max, fraction within 2 %);
* the fraction of images whose overlay pixels (drawn opacity > 0.25) are all masked, and the
  masked fraction of the image;
* false positives: images with any annotation found among clean simulated images (low-mag and
  HRTEM; float, 8-bit and 8-bit with 1 % clipped at each end) and the real sample
  (``--real-dir``: images 0-4 used while tuning, 5-19 held out; raw and with 2 % clipped);
* the time of :func:`find_annotations` and :func:`mask_annotations` per 1024 x 1024 image;
* with ``--n-analyze`` > 0: particles that ``etem_helpers.analyze`` reports on the bar or its
  text without masking, and with ``mask_annotations`` + ``drop_masked_particles``.

Decision rule (written before the runs): the judged criterion holds when every detected bar is
within 2 % (95th percentile < 2 %), detection >= 95 %, every overlay is masked in >= 95 % of
images, and no annotation is found on any clean simulated or real image.

Seeds 0-4 and the real images 0-4 were looked at while developing the detector; seed 5 was
first run on the final code (report seeds >= 5; the real images 5-19 were never tuned on).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from etem_helpers.preprocess.annotations import (
    drop_masked_particles,
    find_annotations,
    mask_annotations,
    measure_scale_bar,
)
from etem_helpers.simulate import sample_params, simulate_micrograph
from etem_helpers.simulate.overlays import CORNERS, burn_in_scale_bar, export_8bit

N_BACKGROUNDS = 8


def backgrounds(size: int, seed: int, n: int = N_BACKGROUNDS) -> list[tuple[np.ndarray, float]]:
    """(image, pixel_size_nm) of ``n`` simulated low-magnification micrographs."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = sample_params(rng, "lowmag", size)
        out.append((simulate_micrograph(params, seed=seed + i).image, params.pixel_size_nm))
    return out


def random_overlay(rng: np.random.Generator, size: int) -> dict:
    """Random burn_in_scale_bar arguments (length, corner, colour, font, ticks, strip, ...)."""
    font_px = float(rng.uniform(10.0, 24.0))
    return dict(
        bar_length_px=float(rng.uniform(0.10, 0.45) * size),
        corner=str(rng.choice(CORNERS)), colour=str(rng.choice(["white", "black"])),
        thickness_px=float(rng.uniform(2.0, 10.0)), font_px=font_px,
        margin_px=float(rng.uniform(8.0, 30.0)), label_above=bool(rng.random() < 0.7),
        ticks_px=float(rng.uniform(2.0, 6.0)) if rng.random() < 0.3 else 0.0,
        strip_px=int(rng.uniform(0.05, 0.1) * size) if rng.random() < 0.3 else 0,
        to_8bit=bool(rng.random() < 0.8), offset_px=float(rng.uniform(0.0, 1.0)),
    )


def bench_bars(images, n_images: int, size: int, seed: int) -> dict:
    """Detection, pixel-size error and mask coverage on generated annotated images."""
    rng = np.random.default_rng(seed + 1)
    errors, detected, covered, masked_fraction, failures = [], 0, 0, [], []
    for i in range(n_images):
        image, pixel_size_nm = images[i % len(images)]
        kwargs = random_overlay(rng, size)
        label_nm = kwargs["bar_length_px"] * pixel_size_nm
        burned = burn_in_scale_bar(image, label=f"{label_nm:.0f} nm", **kwargs)
        found = find_annotations(burned.image)
        try:
            bar = measure_scale_bar(burned.image, found)
        except ValueError as error:
            bar, why = None, str(error)
        else:
            why = "no bar found"
        if bar is None:
            failures.append({"image": i, "why": why, **kwargs})
        else:
            detected += 1
            measured = label_nm / bar.length_px
            errors.append(abs(measured / pixel_size_nm - 1.0))
        covered += int(not ((burned.coverage > 0.25) & ~found.mask).any())
        masked_fraction.append(found.masked_fraction)
    errors = np.asarray(errors)
    return {
        "n_images": n_images, "detection_rate": detected / n_images,
        "pixel_size_error_median": float(np.median(errors)) if errors.size else None,
        "pixel_size_error_p95": float(np.percentile(errors, 95)) if errors.size else None,
        "pixel_size_error_max": float(errors.max()) if errors.size else None,
        "fraction_within_2_percent": float(np.mean(errors <= 0.02)) if errors.size else 0.0,
        "fraction_overlays_fully_masked": covered / n_images,
        "masked_fraction_median": float(np.median(masked_fraction)),
        "failures": failures,
    }


def bench_false_positives(size: int, seed: int, n_per_regime: int, real_dir: Path | None) -> dict:
    """Images with any annotation found among clean simulated and real images."""
    out = {}
    for regime in ("lowmag", "hrtem"):
        rng = np.random.default_rng(seed + 7)
        hits, total = 0, 0
        for i in range(n_per_regime):
            image = simulate_micrograph(sample_params(rng, regime, size), seed=seed + 100 + i).image
            for version in (image, export_8bit(image), export_8bit(image, saturated_percent=1.0)):
                hits += int(find_annotations(version).found)
                total += 1
        out[f"simulated_{regime}"] = {"images": total, "with_annotation": hits}
    if real_dir is not None and (real_dir / "images").is_dir():
        from PIL import Image

        for name, ids in (("real_tuning_0-4", range(5)), ("real_heldout_5-19", range(5, 20))):
            hits, total = 0, 0
            for i in ids:
                image = np.asarray(Image.open(real_dir / "images" / f"image_{i}.png"))[..., 0]
                for version in (image, export_8bit(image, saturated_percent=2.0)):
                    hits += int(find_annotations(version).found)
                    total += 1
            out[name] = {"images": total, "with_annotation": hits}
    return out


def bench_time(seed: int, repeats: int = 3) -> dict:
    """Seconds of find_annotations / mask_annotations on one 1024 x 1024 image (median).

    Wall-clock and CPU (process) time: on a shared machine the CPU time is the fairer one.
    """
    params = sample_params(np.random.default_rng(seed), "lowmag", 1024)
    image = simulate_micrograph(params, seed=seed).image
    burned = burn_in_scale_bar(image, bar_length_px=300.0, label="100 nm", strip_px=60)
    timing = {}
    for name, array in (("clean_8bit", export_8bit(image)), ("annotated_8bit", burned.image),
                        ("clean_float", image)):
        runs, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            find_annotations(array)
            runs.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        timing[f"find_annotations_{name}_s"] = float(np.median(runs))
        timing[f"find_annotations_{name}_cpu_s"] = float(np.median(cpu))
    found = find_annotations(burned.image)
    start, start_cpu = time.perf_counter(), time.process_time()
    mask_annotations(burned.image, found)
    timing["mask_annotations_s"] = time.perf_counter() - start
    timing["mask_annotations_cpu_s"] = time.process_time() - start_cpu
    return timing


def bench_analyze(images, n: int, size: int, seed: int) -> dict:
    """Particles on the bar/text reported by analyze without and with masking."""
    from etem_helpers import analyze

    rng = np.random.default_rng(seed + 3)
    before, after, kept = 0, 0, 0
    for i in range(n):
        image, pixel_size_nm = images[i % len(images)]
        kwargs = random_overlay(rng, size)
        kwargs.update(font_px=max(kwargs["font_px"], 16.0), thickness_px=8.0, strip_px=0)
        burned = burn_in_scale_bar(image, label="100 nm", **kwargs)
        overlay = burned.coverage > 0.25
        plain = analyze(burned.image, pixel_size_nm, device="cpu").labels
        before += len(np.setdiff1d(np.unique(plain[overlay]), [0]))
        found = find_annotations(burned.image)
        result = analyze(mask_annotations(burned.image, found), pixel_size_nm, device="cpu")
        labels = drop_masked_particles(result.labels, found)
        after += len(np.setdiff1d(np.unique(labels[overlay]), [0]))
        kept += int(labels.max())
    return {"images": n, "particles_on_overlay_unmasked": before,
            "particles_on_overlay_masked": after, "particles_kept_masked": kept}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-clean", type=int, default=6, help="clean images per regime")
    parser.add_argument("--real-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "real"
                        / "msa-em-sintering")
    parser.add_argument("--n-analyze", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    images = backgrounds(args.size, args.seed)
    report = {"settings": {k: str(v) for k, v in vars(args).items()}}
    report["bars"] = bars = bench_bars(images, args.n_images, args.size, args.seed)
    print(f"{bars['n_images']} annotated {args.size}^2 images: detection "
          f"{bars['detection_rate']:.1%}; pixel-size error median "
          f"{bars['pixel_size_error_median']:.3%}, p95 {bars['pixel_size_error_p95']:.3%}, "
          f"max {bars['pixel_size_error_max']:.3%}; within 2 %: "
          f"{bars['fraction_within_2_percent']:.1%}; overlays fully masked in "
          f"{bars['fraction_overlays_fully_masked']:.1%}; masked fraction median "
          f"{bars['masked_fraction_median']:.2%}")
    for failure in bars["failures"]:
        print("  missed:", failure)
    report["false_positives"] = fp = bench_false_positives(args.size, args.seed, args.n_clean,
                                                           args.real_dir)
    for name, row in fp.items():
        print(f"false positives {name:20s}: {row['with_annotation']} of {row['images']} images")
    report["time_1024"] = timing = bench_time(args.seed)
    print("time per 1024x1024 image: " + ", ".join(f"{k} {v:.3f}" for k, v in timing.items()))
    if args.n_analyze:
        report["analyze"] = row = bench_analyze(images, args.n_analyze, args.size, args.seed)
        print(f"analyze on {row['images']} annotated images: particles on the bar/text "
              f"{row['particles_on_overlay_unmasked']} unmasked -> "
              f"{row['particles_on_overlay_masked']} masked "
              f"({row['particles_kept_masked']} particles kept)")
    ok = (bars["detection_rate"] >= 0.95 and (bars["pixel_size_error_p95"] or 1) < 0.02
          and bars["fraction_overlays_fully_masked"] >= 0.95
          and all(row["with_annotation"] == 0 for row in fp.values()))
    report["criterion_met"] = bool(ok)
    print(f"criterion (detection >= 95 %, p95 error < 2 %, overlays masked >= 95 %, no false "
          f"positives): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
