"""Coverage of notebook 06's intervals: do they contain what a fresh simulated split gives?

Usage (from the repository root; about 15-20 min on one CPU core with the defaults)::

    nice -n 10 python benchmarks/stats_coverage.py [--repeats 10] [--n-images 100] \
        [--image-size-px 256] [--n-resamples 2000] [--work-dir outputs/stats_coverage] \
        [--json outputs/stats_coverage.json] [--seed-base 1000] [--bca] [--pool 4000]

What it does, per repeat r = 0 .. repeats-1:

1. simulates a *study* split and an independent *fresh* split of ``n_images`` micrographs each
   (``etem_helpers.datasets.ensure_dataset``, new seeds ``seed_base + 2 r`` and
   ``seed_base + 2 r + 1``, never the training seed) with the generator settings of the shipped
   model's config (``regime="mixed"``, all imaging parameters drawn by the simulator), except the
   image size (default 256 px instead of the config's 512 px, to fit the CPU budget; pass
   ``--image-size-px 512`` for the exact setting);
2. runs the shipped U-Net (``Analyzer()``) on both through ``stats.compare_on_dataset``;
3. on the study split, computes what notebook 06 shows (``stats.summarize_comparison``): the
   pooled instance F1, the mean diameter error (bias, nm) and the mean absolute diameter error
   (MAE, nm) of matched particles not cut by the border, each with its 95 % image-level
   (cluster) bootstrap confidence interval, and the 95 % *replication interval* (the CI widened
   by sqrt(2) on each side: where the value of an independent study of the same size should
   fall, Cumming & Maillardet, Psychol. Methods 11 (2006) 217);
4. measures the same three values on the fresh split and records whether each interval
   contains them.

Decision rule (written before the first run): the issue's criterion is met for a metric when the
study interval contains the fresh split's value in at least 9 of 10 repeats; it is judged for the
F1 and the mean diameter error (bias), with the MAE reported alongside. Both interval kinds are
printed. Expectation, stated in advance: a correct 95 % confidence interval for the population
value captures an independent same-size replication only about 83 % of the time (the fresh
value has its own sampling error), so 9 of 10 is then reached with probability about 0.5; the
replication interval targets 95 % (9 of 10 with probability about 0.91).

``--bca`` adds BCa intervals of the same statistics (same image-level resampling), an exploratory
alternative added after the first run (seeds 1000-1019) found the percentile intervals too narrow;
it is judged only on seeds not used before (``--seed-base 3000``).

Third run (rule written 2026-11-30 10:19, before the run). Runs 1 and 2 (seeds 1000-1019 and
3000-3019) are now *development* data: on their 1200 images, 4000 random study/fresh pairs of
30 images showed the percentile interval widened by sqrt(2) covering the fresh F1 / bias 92 % /
89 % of the time, and the bootstrap-t replication interval of the pooled ratio
(``stats.ratio_interval(kind="replication")``, now ``rep_low``/``rep_high`` of
``summarize_comparison`` and the interval notebook 06 shows) 95 % / 92 %. The bootstrap-t
replication interval was chosen on those data. It is judged once, on new seeds
(``--seed-base 5000``, 256 px, 30 images, 10 repeats, 2000 replicates): the criterion is met for a
metric when it contains the fresh value in at least 9 of 10 repeats, for F1 and bias. Stated in
advance: with true coverage 0.95 / 0.92 that happens with probability about 0.91 / 0.82 (both
about 0.75); whatever the result, no other seeds are run to replace it. ``--pool`` then repeats
the 4000-pair study on the run's own 600 images (reported, not judged).

Result of the third run: F1 10/10 (met), bias 8/10 (not met); pool study on its 600 images
95.1 % / 92.0 %. The bias interval is too narrow with 30 images because the per-image errors
are heavy-tailed (kurtosis about 13: coarse low-magnification images with large particles
carry +3 nm errors). On all 1800 images of runs 1-3, pairs of 30 / 60 / 100 images gave bias
coverage 92.5 % / 92.5 % / 94.7 % (F1 94.0 / 94.7 / 94.5 %): the remedy is more images, so
notebook 06 now simulates 100 test images (quick and full profiles).

Fourth run (rule written 2026-11-30 10:25, before the run): ``--n-images 100 --seed-base 7000``
(256 px, 10 repeats, 2000 replicates), judged as the third (bootstrap-t replication interval,
at least 9 of 10 for F1 and bias); expected probability of passing about 0.9 per metric. No
other seeds are run to replace it.

Result of the fourth run: F1 10/10, bias 9/10 (criterion met for both); pool study on its 2000
images (2000 pairs of 100): 95.5 % / 94.1 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
METRICS = ("f1", "bias", "mae")
JUDGED = ("f1", "bias")


def _model_generator_settings(analyzer) -> dict:
    """The shipped model's simulation settings (its card's config, as in default_config.json)."""
    config = dict(analyzer.card.config or {})
    shipped = json.loads((REPOSITORY_ROOT / "etem_helpers" / "models" /
                          "default_config.json").read_text())
    simulate = dict(config.get("simulate") or shipped["simulate"])
    return {"regime": simulate["regime"], "image_size_px": int(simulate["image_size_px"]),
            "training_seed": int(config.get("seed", shipped["seed"]))}


def _split_values(folder, n_images, seed, settings, method, n_resamples, bca=False):
    """summarize_comparison of the U-Net on one simulated split: {metric: row}."""
    from etem_helpers.datasets import ensure_dataset, iter_samples
    from etem_helpers.stats import compare_on_dataset, summarize_comparison

    ensure_dataset(folder, n_images, seed=seed, regime=settings["regime"],
                   image_size_px=settings["image_size_px"], n_jobs=1)
    tables = compare_on_dataset(iter_samples(folder), {"unet": method})
    summary = summarize_comparison(tables, n_resamples=n_resamples, seed=seed)
    rows = summary.set_index("metric")
    n_pairs = int(rows.loc["bias", "n"]) if "bias" in rows.index else 0
    values = {m: rows.loc[m].to_dict() for m in METRICS if m in rows.index}
    if bca:
        for m, iv in _bca_intervals(tables, n_resamples, seed).items():
            values[m].update(bca_low=iv.ci_low, bca_high=iv.ci_high)
    return values, n_pairs, _per_image_totals(tables)


def _per_image_totals(tables) -> list[list[float]]:
    """Per image: tp, fp, fn and the sum of diameter errors and number of pairs (as summarised)."""
    det = tables.detections.set_index("image")[["tp", "fp", "fn"]].astype(float)
    p = tables.particles
    sel = p[p["matched"] & ~p["touches_border"] & (p["quantity"] == "diameter_nm")]
    sel = sel[np.isfinite(sel["measured"]) & np.isfinite(sel["reference"])]
    err = (sel["measured"] - sel["reference"]).groupby(sel["image"]).agg(["sum", "count"])
    return det.join(err).fillna(0.0).to_numpy().tolist()


def pool_study(per_image, n_images, *, n_pairs=4000, n_resamples=1000, seed=0) -> dict:
    """Coverage of interval kinds over random study/fresh pairs drawn from a pool of images.

    per_image: rows (tp, fp, fn, error sum, pairs) of all images; each pair of disjoint random
    subsets of ``n_images`` plays study and fresh split. Returns the share of pairs whose
    study interval contains the fresh value, per metric and interval kind.
    """
    from etem_helpers.stats import ratio_interval

    x = np.asarray(per_image, dtype=float)
    parts = {"f1": lambda v: (2 * v[:, 0], 2 * v[:, 0] + v[:, 1] + v[:, 2]),
             "bias": lambda v: (v[:, 3], v[:, 4])}
    rng = np.random.default_rng(seed)
    hits = {m: {"ci": 0, "ci_sqrt2": 0, "bootstrap_t_replication": 0} for m in parts}
    for _ in range(n_pairs):
        order = rng.permutation(len(x))
        study, fresh = x[order[:n_images]], x[order[n_images:2 * n_images]]
        draws = rng.integers(0, n_images, size=(n_resamples, n_images))
        for m, split in parts.items():
            a, b = split(study)
            fa, fb = split(fresh)
            value, estimate = fa.sum() / fb.sum(), a.sum() / b.sum()
            low, high = np.quantile(a[draws].sum(1) / b[draws].sum(1), [0.025, 0.975])
            hits[m]["ci"] += bool(low <= value <= high)
            widened = _replication({"estimate": estimate, "ci_low": low, "ci_high": high})
            hits[m]["ci_sqrt2"] += bool(widened[0] <= value <= widened[1])
            hits[m]["bootstrap_t_replication"] += ratio_interval(
                a, b, kind="replication", n_resamples=n_resamples,
                seed=int(rng.integers(1 << 31))).contains(value)
    return {m: {k: v / n_pairs for k, v in h.items()} for m, h in hits.items()}


def _bca_intervals(tables, n_resamples, seed) -> dict:
    """The same statistics with BCa instead of percentile intervals (same image-level resampling)."""
    from etem_helpers.stats import cluster_bootstrap, detection_intervals

    f1 = detection_intervals(tables.detections, n_resamples=n_resamples, method="bca", seed=seed).f1
    p = tables.particles
    sel = p[p["matched"] & ~p["touches_border"] & (p["quantity"] == "diameter_nm")]
    err = (sel["measured"] - sel["reference"]).rename("e").to_frame().assign(image=sel["image"])
    return {"f1": f1,
            "bias": cluster_bootstrap(err, lambda t: float(t["e"].mean()), n_resamples=n_resamples,
                                      method="bca", seed=seed),
            "mae": cluster_bootstrap(err, lambda t: float(t["e"].abs().mean()),
                                     n_resamples=n_resamples, method="bca", seed=seed)}


def _replication(row) -> tuple[float, float]:
    est, low, high = row["estimate"], row["ci_low"], row["ci_high"]
    return est - np.sqrt(2.0) * (est - low), est + np.sqrt(2.0) * (high - est)


def run(args) -> dict:
    import torch

    from etem_helpers.pipeline import Analyzer

    torch.set_num_threads(1)
    analyzer = Analyzer(device="cpu")
    settings = _model_generator_settings(analyzer)
    config_size = settings["image_size_px"]
    settings["image_size_px"] = args.image_size_px or config_size
    print(f"generator: regime={settings['regime']}, image_size_px={settings['image_size_px']} "
          f"(model config: {config_size}); {args.repeats} repeats x 2 splits x {args.n_images} "
          f"images; bootstrap {args.n_resamples} replicates (image level)", flush=True)
    method = lambda image, px: analyzer(image, px).labels  # noqa: E731
    work = Path(args.work_dir)
    repeats = []
    for r in range(args.repeats):
        seeds = (args.seed_base + 2 * r, args.seed_base + 2 * r + 1)
        if settings["training_seed"] in seeds:
            raise ValueError(f"seed {settings['training_seed']} is the training seed; change "
                             "--seed-base.")
        started = time.perf_counter()
        study, n_study, study_images = _split_values(
            work / f"split_seed{seeds[0]}", args.n_images, seeds[0], settings, method,
            args.n_resamples, bca=args.bca)
        fresh, n_fresh, fresh_images = _split_values(
            work / f"split_seed{seeds[1]}", args.n_images, seeds[1], settings, method, 200)
        record = {"seeds": seeds, "n_pairs": (n_study, n_fresh), "metrics": {},
                  "per_image": study_images + fresh_images}
        for m in METRICS:
            row, value = study[m], fresh[m]["estimate"]
            rep = _replication(row)
            boot_t = (row["rep_low"], row["rep_high"])
            record["metrics"][m] = {
                "estimate": row["estimate"], "ci": (row["ci_low"], row["ci_high"]),
                "replication": rep, "fresh": value,
                "in_ci": bool(row["ci_low"] <= value <= row["ci_high"]),
                "in_replication": bool(rep[0] <= value <= rep[1]),
                "replication_t": boot_t,
                "in_replication_t": bool(boot_t[0] <= value <= boot_t[1]),
            }
            if args.bca:
                bca = (row["bca_low"], row["bca_high"])
                record["metrics"][m].update(bca=bca, in_bca=bool(bca[0] <= value <= bca[1]))
                print(f"repeat {r} {m:>4}: BCa [{bca[0]:.4f}, {bca[1]:.4f}] in BCa: "
                      f"{record['metrics'][m]['in_bca']}", flush=True)
            print(f"repeat {r} {m:>4}: study {row['estimate']:.4f} CI [{row['ci_low']:.4f}, "
                  f"{row['ci_high']:.4f}] CI x sqrt2 [{rep[0]:.4f}, {rep[1]:.4f}] bootstrap-t "
                  f"replication [{boot_t[0]:.4f}, {boot_t[1]:.4f}] | fresh {value:.4f} in CI: "
                  f"{record['metrics'][m]['in_ci']}, in CI x sqrt2: "
                  f"{record['metrics'][m]['in_replication']}, in bootstrap-t replication: "
                  f"{record['metrics'][m]['in_replication_t']}", flush=True)
        print(f"repeat {r}: {n_study} / {n_fresh} matched pairs, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        repeats.append(record)
    kinds = ("in_ci", "in_replication", "in_replication_t") + (("in_bca",) if args.bca else ())
    coverage = {m: {kind: int(sum(rec["metrics"][m][kind] for rec in repeats))
                    for kind in kinds} for m in METRICS}
    print(f"\nCoverage over {args.repeats} repeats (criterion: >= 9 of 10 for "
          f"{', '.join(JUDGED)}):")
    for m in METRICS:
        c = coverage[m]
        print(f"  {m:>4}: 95 % CI {c['in_ci']}/{args.repeats}, CI x sqrt2 "
              f"{c['in_replication']}/{args.repeats}, bootstrap-t replication interval "
              f"{c['in_replication_t']}/{args.repeats}"
              + (f", 95 % BCa CI {c['in_bca']}/{args.repeats}" if args.bca else "")
              + ("  (judged)" if m in JUDGED else ""))
    result = {"settings": {**settings, "n_images": args.n_images, "repeats": args.repeats,
                           "n_resamples": args.n_resamples, "seed_base": args.seed_base,
                           "bca": args.bca},
              "repeats": repeats, "coverage": coverage}
    if args.pool:
        pooled = [row for rec in repeats for row in rec["per_image"]]
        result["pool_study"] = pool_study(pooled, args.n_images, n_pairs=args.pool,
                                          seed=args.seed_base)
        print(f"\nPool study: {args.pool} random study/fresh pairs of {args.n_images} images "
              f"from these {len(pooled)} images (share of fresh values inside):")
        for m, shares in result["pool_study"].items():
            print(f"  {m:>4}: " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()))
    return result


def pool_by_size(json_paths, sizes, *, n_pairs=1500, n_resamples=600, seed=1) -> dict:
    """Pool study over the images of earlier runs' JSON files, for several split sizes."""
    pooled = [row for path in json_paths
              for rec in json.loads(Path(path).read_text())["repeats"] for row in rec["per_image"]]
    out = {}
    for size in sizes:
        out[int(size)] = pool_study(pooled, int(size), n_pairs=n_pairs, n_resamples=n_resamples,
                                    seed=seed)
        print(f"{len(pooled)} images, pairs of {size}: " + "; ".join(
            f"{m} " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items())
            for m, shares in out[int(size)].items()), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--n-images", type=int, default=100,
                        help="images per split (notebook 06's quick and full profiles: 100)")
    parser.add_argument("--image-size-px", type=int, default=256,
                        help="0: the model config's size (512)")
    parser.add_argument("--n-resamples", type=int, default=2000)
    parser.add_argument("--seed-base", type=int, default=1000)
    parser.add_argument("--work-dir", default=str(REPOSITORY_ROOT / "outputs" / "stats_coverage"),
                        help="where the simulated splits go (reused when identical)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--bca", action="store_true",
                        help="also BCa intervals of the same statistics (exploratory)")
    parser.add_argument("--pool", type=int, default=0, metavar="N_PAIRS",
                        help="also the coverage over N_PAIRS random study/fresh pairs drawn "
                             "from all images of the run (e.g. 4000)")
    parser.add_argument("--pool-from", nargs="+", default=None, metavar="JSON",
                        help="no new run: the pool study over the images of these earlier runs' "
                             "--json files, for each of --pool-sizes")
    parser.add_argument("--pool-sizes", nargs="+", type=int, default=[30, 60, 100])
    args = parser.parse_args(argv)
    if args.pool_from:
        result = {"pool_by_size": pool_by_size(args.pool_from, args.pool_sizes)}
    else:
        result = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
