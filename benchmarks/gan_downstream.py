"""Does GAN augmentation help on real images? U-Nets trained on (a) sim, (b) sim + GAN, (c) GAN.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/gan_downstream.py \\
        --real-dir ../shared/real/msa-em-sintering --seeds 0 1 2 \\
        --json outputs/gan_downstream.json

Protocol (written before the runs; see BENCHMARKS.md "GAN downstream test"):

1. Data. ``--n-images`` simulated low-magnification micrographs (512 px,
   ``etem_helpers.simulate``, regime "lowmag", seed 100) and as many GAN images (512 px,
   masks from the simulator's sampler with the request below, seed 200, drawn by
   ``--generator``). (b) is the two folders combined.
2. Training. One light U-Net per (condition, seed), all with the same configuration
   (:func:`etem_helpers.gan.judge.downstream_config`): every image resampled to the real
   images' nominal 0.5 nm/px, ``--tile-px`` tiles, the same number of tiles per epoch in every
   condition (b draws half as many tiles per image), ``--epochs`` epochs with early stopping on
   the condition's own validation micrographs.
3. Score. Each U-Net through ``etem_helpers.Analyzer`` on the real sample's evaluation images
   (image_5..19, never used for training or tuning anything): pixel Dice, instance F1, size
   bias (foreground ratio and median matched area ratio predicted / true).
4. Spread. Mean and (max - min) over the seeds, per condition.

Decision rule: (b) "beats" (a) only if its mean real instance F1 exceeds (a)'s by more than
the larger of the two seed ranges AND its mean pixel Dice is not lower by more than that
range's Dice counterpart. Only then is the shipped model retrained with GAN augmentation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from etem_helpers.gan.judge import CONDITIONS, decide_downstream, summarise_downstream

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENERATOR = REPOSITORY_ROOT / "etem_helpers" / "models" / "gan_light.pt"
# Sizes and shapes a user would ask for after looking at the calibration images (image_0..4:
# particle areas 250-10 000 px^2 at the nominal 0.5 nm/px, i.e. about 10-55 nm, mostly round).
REQUEST = {"diameter_range_nm": (10.0, 55.0), "kinds": ("round", "faceted", "aggregate"),
           "round_fraction": 0.7, "n_particles": 15, "touching_fraction": 0.3,
           "outline_roughness": 0.15}


def make_data(work: Path, *, generator: Path, n_images: int, progress: bool,
              conditions=tuple(CONDITIONS)) -> dict[str, Path]:
    """Simulated, GAN and combined dataset folders under ``work`` (reused when present).

    Only what ``conditions`` need is made: (a) alone needs no generator.
    """
    from etem_helpers.datasets.combine import combine_datasets
    from etem_helpers.datasets.ensure import ensure_dataset
    from etem_helpers.gan import MaskRequest, generate

    sim = ensure_dataset(work / "sim", n_images, seed=100, regime="lowmag", image_size_px=512,
                         progress=progress).path
    if set(conditions) == {"a"}:
        return {"a": sim}
    gan = work / "gan"
    if not (gan / "dataset.json").is_file():
        generate(generator, gan, n_images, request=MaskRequest(**REQUEST), image_size_px=512,
                 seed=200, progress=progress)
    both = work / "sim_gan"
    if not (both / "dataset.json").is_file():
        combine_datasets({"sim": sim, "gan": gan}, both)
    return {"a": sim, "b": both, "c": gan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, default=DEFAULT_GENERATOR)
    parser.add_argument("--real-dir", default=None, help="local copy of the real sample")
    parser.add_argument("--work", type=Path, default=Path("outputs/gan_downstream"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS),
                        choices=list(CONDITIONS))
    parser.add_argument("--n-images", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--tile-px", type=int, default=128)
    parser.add_argument("--tiles-per-image", type=int, default=8)
    parser.add_argument("--pixel-size-nm", type=float, default=0.5,
                        help="nominal pixel size of the real sample (unknown; nm/px)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="only merge the runs of earlier --json reports (e.g. seeds run in "
                             "parallel processes) and print the summary and decision")
    args = parser.parse_args()
    if args.combine:
        reports = [json.loads(path.read_text()) for path in args.combine]
        runs = [run for report in reports for run in report["runs"]]
        arguments = {"combined_from": [str(path) for path in args.combine],
                     "arguments_of_each": [report.get("arguments", {}) for report in reports]}
        report_summary(runs, arguments, args.json, started=time.perf_counter())
        return

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from etem_helpers.datasets import real
    from etem_helpers.gan.judge import downstream_config, score_on_real
    from etem_helpers.segmentation.train import run_training

    samples = real.sintering_samples(args.pixel_size_nm, ids=real.SINTERING_EVALUATION_IDS,
                                     source_dir=args.real_dir)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = make_data(args.work, generator=args.generator, n_images=args.n_images, progress=False,
                     conditions=args.conditions)
    print(f"data ready in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k}={v}" for k, v in data.items()))
    runs = []
    for seed in args.seeds:
        for condition in args.conditions:
            tiles = args.tiles_per_image // 2 if condition == "b" else args.tiles_per_image
            config = downstream_config(data[condition], seed=seed, epochs=args.epochs,
                                       tile_px=args.tile_px, tiles_per_image=tiles,
                                       pixel_size_nm=args.pixel_size_nm)
            out = args.work / f"unet_{condition}_seed{seed}.pt"
            t0 = time.perf_counter()
            history, checkpoint = run_training(config, out, overwrite=True, progress=False)
            train_s = time.perf_counter() - t0
            scores = score_on_real(checkpoint, samples,
                                   evaluation_ids=real.SINTERING_EVALUATION_IDS)
            runs.append({"condition": condition, "seed": seed, "train_seconds": train_s,
                         "epochs_run": len(history["epoch"]), "real": dict(scores)})
            print(f"({condition}) {CONDITIONS[condition]:18s} seed {seed}: "
                  f"Dice {scores['pixel_dice']:.3f}  F1 {scores['f1']:.3f}  "
                  f"P {scores['precision']:.3f}  R {scores['recall']:.3f}  "
                  f"fg ratio {scores['foreground_ratio']:.2f}  "
                  f"area ratio {scores['median_area_ratio']:.2f}  ({train_s:.0f} s)", flush=True)
    report_summary(runs, {k: str(v) for k, v in vars(args).items()}, args.json, started=started)


def report_summary(runs: list[dict], arguments: dict, json_path: Path | None, *,
                   started: float) -> None:
    """Print the table and the decision; write the JSON report when asked."""
    summary = summarise_downstream(runs)
    print("\n| condition | seeds | real Dice mean [min, max] | real F1 mean [min, max] | "
          "foreground ratio | median area ratio |")
    print("|---|---|---|---|---|---|")
    for condition, s in summary.items():
        print(f"| ({condition}) {CONDITIONS[condition]} | {s['n_seeds']} | "
              f"{s['pixel_dice']['mean']:.3f} [{s['pixel_dice']['min']:.3f}, "
              f"{s['pixel_dice']['max']:.3f}] | {s['f1']['mean']:.3f} [{s['f1']['min']:.3f}, "
              f"{s['f1']['max']:.3f}] | {s['foreground_ratio']['mean']:.2f} | "
              f"{s['median_area_ratio']['mean']:.2f} |")
    verdict = decide_downstream(summary)
    print(f"\nDecision: {verdict}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"arguments": arguments,
                                         "request": REQUEST,
                                         "runs": runs, "summary": summary,
                                         "decision": verdict}, indent=2))


if __name__ == "__main__":
    main()
