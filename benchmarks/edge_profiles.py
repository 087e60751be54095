"""Where is an outline drawn on the intensity profile of a particle edge? (issue 13, item 6)

Usage (from the repository root; about 1 min)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/edge_profiles.py \
        --real-source ../shared/real/msa-em-sintering [--n-sim 12] [--evaluate] \
        [--json outputs/edge_profiles.json]

For every image, the intensity is averaged over the pixels at each signed distance d (px) from
an outline (negative inside, positive outside; the boundary rings at -1 / +1) and rescaled to
the *contrast fraction* f(d) = (I(d) - I_outside) / (I_inside - I_outside), with I_inside the
mean over d <= -6 px and I_outside over d >= +6 px: 1 deep inside, 0 in the support. Printed per
outline kind: f at the outline itself (mean of the two boundary rings) and the signed distance
at which the profile crosses half contrast (f = 0.5). Outlines compared:

* real sample, calibration images image_0..4 only (images 5-19 are kept for evaluation): the
  annotators' hand outlines and the shipped U-Net's outlines;
* simulated low-magnification images (``sample_params(rng, "lowmag", 512)``, seeds 300 + k):
  the simulator's true outlines (projected thickness > 0) and the shipped U-Net's.

Reading: an outline drawn where f is small lies on the foot of the edge, far out; one at f
about 0.5 lies mid-edge. If the annotators draw at mid-edge and the simulator's truth sits at
the foot, a network trained on the simulator learns to draw outside the annotators' edge.

``--evaluate`` then scores the shipped U-Net with its own outlines (``outline="physical"``) and
with outlines moved to half contrast (``outline="half_contrast"``,
:func:`etem_helpers.segmentation.outline.half_contrast_outlines`, its one constant chosen on
image_0..4) on the real sample's evaluation images image_5..19 against the hand outlines, and
on the simulated images against the simulator's truth: instance F1 (IoU >= 0.5), median area
ratio and mean relative diameter error of matched pairs (``metrics.evaluate`` pooled by
``gan.judge.real_summary``).
Rule written 2026-11-30 11:00, before that run: the default stays ``"physical"`` whatever the
result (the simulator's projected-thickness edge is the physical size, and the simulated
figures are judged against it); ``"half_contrast"`` is offered for comparisons with manual
measurements and reported beside it, never tuned on image_5..19.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

#: Signed distances (px, Euclidean distance transform) of the profile: inside -8..-1, outside
#: 1..8; the outline lies between the rings at -1 and +1, i.e. at 0.
DISTANCES_PX = np.concatenate([np.arange(-8, 0), np.arange(1, 9)])


def signed_distance_px(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the outline of a binary mask: < 0 inside, > 0 outside (px)."""
    mask = np.asarray(mask, bool)
    return (ndi.distance_transform_edt(~mask) - ndi.distance_transform_edt(mask)).astype(
        np.float32)


def contrast_profile(image: np.ndarray, mask: np.ndarray) -> dict | None:
    """f(d) around the outline of ``mask`` (see the module docstring); None if undefined."""
    signed = signed_distance_px(mask)
    inside = image[signed <= -6]
    outside = image[signed >= 6]
    if inside.size < 50 or outside.size < 50:
        return None
    i_in, i_out = float(np.mean(inside)), float(np.mean(outside))
    if abs(i_in - i_out) < 1e-6:
        return None
    values = {}
    for d in DISTANCES_PX:
        sel = np.abs(signed - d) < 0.5
        values[int(d)] = float((np.mean(image[sel]) - i_out) / (i_in - i_out)) if sel.any() else np.nan
    ring_in = np.mean(image[np.abs(signed + 1) < 0.01])
    ring_out = np.mean(image[np.abs(signed - 1) < 0.01])
    at_outline = float((0.5 * (ring_in + ring_out) - i_out) / (i_in - i_out))
    return {"profile": values, "at_outline": at_outline, "half_px": _half_crossing(values)}


def _half_crossing(values: dict) -> float:
    """Signed distance (px) where f falls through 0.5, linearly interpolated (NaN if none)."""
    d = np.array(sorted(values))
    f = np.array([values[k] for k in d])
    for k in range(len(d) - 1):
        if f[k] >= 0.5 > f[k + 1]:
            return float(d[k] + (d[k + 1] - d[k]) * (f[k] - 0.5) / (f[k] - f[k + 1]))
    return float("nan")


def _summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r is not None]
    return {"n_images": len(ok),
            "at_outline_median": float(np.median([r["at_outline"] for r in ok])),
            "half_px_median": float(np.nanmedian([r["half_px"] for r in ok]))}


def evaluate(args) -> dict:
    """Shipped U-Net, physical vs half-contrast outlines, on real image_5..19 and simulations."""
    import torch

    from etem_helpers.gan.judge import SEGMENTATION_ONLY, real_summary
    from etem_helpers.metrics import evaluate
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import sample_params, simulate_micrograph

    torch.set_num_threads(1)
    sets = {}
    if args.real_source:
        from etem_helpers.datasets import real

        sets["real image_5..19"] = real.sintering_samples(
            args.real_pixel_size_nm, ids=real.SINTERING_EVALUATION_IDS,
            source_dir=args.real_source)
    simulated = []
    for k in range(args.n_sim):
        params = sample_params(np.random.default_rng(300 + k), "lowmag", image_size_px=512)
        sim = simulate_micrograph(params, seed=300 + k)
        simulated.append((f"sim_{300 + k}", sim.image, sim.labels, params.pixel_size_nm))
    sets["simulated low-mag"] = simulated
    out = {}
    for outline in ("physical", "half_contrast"):
        analyzer = Analyzer(device="cpu", outline=outline, **SEGMENTATION_ONLY)
        for name, samples in sets.items():
            scores = real_summary(evaluate(
                samples, {outline: lambda image, px, a=analyzer: a(image, px).labels}))
            out[f"{name} | {outline}"] = scores
            print(f"  {name:20s} {outline:14s} F1 {scores['f1']:.3f}  median area ratio "
                  f"{scores['median_area_ratio']:.3f}  diameter error "
                  f"{100 * scores['diameter_error']:.1f} %  bias "
                  f"{100 * scores['diameter_bias']:+.1f} %", flush=True)
    return out


def run(args) -> dict:
    import torch

    from etem_helpers.gan.judge import SEGMENTATION_ONLY
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.simulate import sample_params, simulate_micrograph

    torch.set_num_threads(1)
    analyzer = Analyzer(device="cpu", **SEGMENTATION_ONLY)
    out = {}
    if args.real_source:
        from etem_helpers.datasets import real

        samples = real.sintering_samples(args.real_pixel_size_nm,
                                         ids=real.SINTERING_CALIBRATION_IDS,
                                         source_dir=args.real_source)
        hand, model = [], []
        for _, image, truth, px in samples:
            image = image.astype(np.float32)
            hand.append(contrast_profile(image, truth > 0))
            model.append(contrast_profile(image, analyzer(image, px).labels > 0))
        out["real_hand"], out["real_unet"] = _summary(hand), _summary(model)
    truth_rows, model_rows = [], []
    for k in range(args.n_sim):
        params = sample_params(np.random.default_rng(300 + k), "lowmag", image_size_px=512)
        sim = simulate_micrograph(params, seed=300 + k)
        image = sim.image.astype(np.float32)
        truth_rows.append(contrast_profile(image, sim.labels > 0))
        model_rows.append(contrast_profile(image, analyzer(image, params.pixel_size_nm).labels > 0))
    out["sim_truth"], out["sim_unet"] = _summary(truth_rows), _summary(model_rows)
    print("outline                 images  contrast fraction at the outline  f = 0.5 at (px)")
    for key, v in out.items():
        print(f"  {key:22s} {v['n_images']:5d}  {v['at_outline_median']:31.3f}  "
              f"{v['half_px_median']:+15.2f}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-source", default=None)
    parser.add_argument("--real-pixel-size-nm", type=float, default=0.5)
    parser.add_argument("--n-sim", type=int, default=12)
    parser.add_argument("--json", default=None)
    parser.add_argument("--evaluate", action="store_true",
                        help="also score physical vs half-contrast outlines (see above)")
    args = parser.parse_args(argv)
    result = run(args)
    if args.evaluate:
        result["evaluation"] = evaluate(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
