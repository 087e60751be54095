"""How alike are simulated low-magnification images and the real sintering images?

Usage::

    python benchmarks/realism_sim_vs_real.py [--n-sim 12] [--seed 0] [--real-dir DIR]
                                             [--figure /tmp/realism_after.png]

Simulates ``--n-sim`` 512 x 512 low-magnification micrographs with parameters drawn by
``sample_params(rng, "lowmag")`` (``rng = default_rng(seed)``), loads the real images
(from the download cache, or from ``--real-dir``, a local copy laid out as
``images/image_N.png`` + ``labels/label_N.png`` whose hashes are checked) and prints the
:mod:`etem_helpers.realism` measures for

* real calibration (``SINTERING_CALIBRATION_IDS``) vs simulated,
* real evaluation (``SINTERING_EVALUATION_IDS``, held out: never tune on it) vs simulated,
* real calibration vs real evaluation (the natural floor of each distance).

Optionally saves a figure of real calibration images beside simulated ones.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from etem_helpers.datasets.real import (
    SINTERING_CALIBRATION_IDS,
    SINTERING_EVALUATION_IDS,
    load_sintering,
    populate_cache_from,
)
from etem_helpers.realism import compare_image_sets
from etem_helpers.simulate import sample_params, simulate_micrograph


def simulate_set(n_images: int, seed: int, size: int = 512):
    """(images, masks, params) of n_images low-mag micrographs drawn with sample_params."""
    rng = np.random.default_rng(seed)
    images, masks, params = [], [], []
    for i in range(n_images):
        p = sample_params(rng, "lowmag", image_size_px=size)
        sim = simulate_micrograph(p, seed=seed * 1000 + i)
        images.append(sim.image)
        masks.append(sim.labels)
        params.append(p)
    return images, masks, params


def load_real(real_dir: str | None):
    """{name: (image, mask)} of the real sintering images (cache or a checked local copy)."""
    if real_dir is None:
        pairs = load_sintering()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            populate_cache_from(real_dir, cache_dir=tmp)
            pairs = load_sintering(cache_dir=tmp)
    return {name: (image, mask) for image, mask, name in pairs}


def _table(rows: dict[str, dict]) -> str:
    names = list(rows)
    keys = list(next(iter(rows.values())))
    lines = [f"{'measure':34s}" + "".join(f"{n:>22s}" for n in names)]
    for key in keys:
        lines.append(f"{key:34s}" + "".join(f"{rows[n][key]:22.4f}" for n in names))
    return "\n".join(lines)


def save_figure(path: str, real: list, sim: list, sim_params: list) -> None:
    """Real calibration images (top) beside simulated ones (bottom), robust grey scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(real), len(sim), 5)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 6.6))
    for row, images, titles in ((0, real[:n], [f"real {name}" for name, _ in real[:n]]),
                                (1, sim[:n], [f"sim {p.pixel_size_nm:.2f} nm/px, "
                                              f"df {p.defocus_nm / 1000:.2f} um"
                                              for p in sim_params[:n]])):
        for ax, item, title in zip(axes[row], images, titles, strict=True):
            image = item[1][0] if row == 0 else item
            lo, hi = np.percentile(image, [0.5, 99.5])
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sim", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-dir", default=None,
                        help="local copy of the real images (images/, labels/); default: cache")
    parser.add_argument("--figure", default=None, help="save a comparison figure (PNG) here")
    args = parser.parse_args()

    real = load_real(args.real_dir)
    calibration = [(n, real[n]) for n in SINTERING_CALIBRATION_IDS]
    evaluation = [(n, real[n]) for n in SINTERING_EVALUATION_IDS]
    start = time.perf_counter()
    sim_images, sim_masks, sim_params = simulate_set(args.n_sim, args.seed)
    print(f"simulated {args.n_sim} low-mag 512x512 images in "
          f"{time.perf_counter() - start:.1f} s (seed {args.seed})")

    def images(pairs):
        return [p[1][0] for p in pairs], [p[1][1] for p in pairs]

    cal_im, cal_mk = images(calibration)
    ev_im, ev_mk = images(evaluation)
    rows = {
        "calibration_vs_sim": compare_image_sets(cal_im, sim_images, cal_mk, sim_masks),
        "evaluation_vs_sim": compare_image_sets(ev_im, sim_images, ev_mk, sim_masks),
        "calibration_vs_eval": compare_image_sets(cal_im, ev_im, cal_mk, ev_mk),
    }
    print("(*_real = first set, *_sim = second set of each column)")
    print(_table(rows))
    if args.figure:
        save_figure(args.figure, calibration, sim_images, sim_params)
        print(f"figure saved to {args.figure}")


if __name__ == "__main__":
    main()
