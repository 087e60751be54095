"""Speed and memory of ``etem_helpers.analyze`` (seconds per image, stages, peak RSS).

Usage::

    python benchmarks/bench_analyze.py [--model PATH] [--repeats 7] [--skip-large]
                                       [--large-size 8192] [--threads N] [--against SRC]

1. A 1024 × 1024 simulated low-magnification micrograph (``sample_params(default_rng(3),
   "lowmag", 1024)``, seed 0; with simulator revision 2: 80 particles at 0.28 nm/px; the
   script prints what it used): one warm-up call,
   then ``--repeats`` timed calls of ``analyze`` on the CPU; prints the median, min/max and
   interquartile range of the total seconds and the median seconds per stage
   (read / normalise / predict / split / measure ...). Target: median <= 1 s.
2. An 8192 × 8192 float32 micrograph (a mosaic of four simulated 1024 × 1024 low-mag
   micrographs, flipped and rotated), analysed in a SUBPROCESS so that its peak resident
   memory (``resource.getrusage``, the whole child process: Python, torch, the image and
   the analysis; ``VmHWM`` on Linux) is measured alone. Target: peak RSS < 4 GB.

``--model`` defaults to the shipped ``etem_helpers/models/default.pt``; if that file does
not exist yet, a light-preset checkpoint with random weights is written to a temporary
folder and used instead (said in the output). The network's speed does not depend on its
weights, but the split and measure stages do (a random network predicts thousands of
noise fragments), so only the predict figures of such a run are representative.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: analyze() settings that run only the stages the package had before issue 9's restructure.
PLAIN_SETTINGS = {"size_estimator": None, "faults": False, "annotations": False}
STAGES = ("read", "resample", "normalize", "predict", "split", "map_back", "measure", "sizing",
          "faults")


def simulated_lowmag(size_px: int = 1024, *, params_seed: int = 3, seed: int = 0):
    """(image float32, pixel size nm, n true particles) of a simulated low-mag micrograph."""
    from etem_helpers.simulate import sample_params, simulate_micrograph

    params = sample_params(np.random.default_rng(params_seed), "lowmag", image_size_px=size_px)
    sim = simulate_micrograph(params, seed=seed)
    return sim.image.astype(np.float32), float(params.pixel_size_nm), int(sim.labels.max())


def mosaic(tiles: list[np.ndarray], size_px: int) -> np.ndarray:
    """A size_px² image tiled with flipped/rotated copies of equally sized square tiles."""
    side = tiles[0].shape[0]
    out = np.empty((size_px, size_px), dtype=np.float32)
    k = 0
    for y in range(0, size_px, side):
        for x in range(0, size_px, side):
            tile = np.rot90(tiles[k % len(tiles)], k // len(tiles) % 4)
            if (k // 7) % 2:
                tile = tile[:, ::-1]
            h, w = min(side, size_px - y), min(side, size_px - x)
            out[y : y + h, x : x + w] = tile[:h, :w]
            k += 1
    return out


def random_light_checkpoint(folder: Path) -> Path:
    """A light-preset checkpoint with random weights (same architecture as the default)."""
    from etem_helpers.preprocess import Normalization
    from etem_helpers.segmentation import ModelCard, build_unet, save_checkpoint

    card = ModelCard(preset="light", normalization=Normalization(), pixel_size_nm=0.3,
                     pixel_size_range_nm=(0.02, 1.0), tile_px=256)
    return save_checkpoint(folder / "light_random.pt", build_unet("light", seed=0), card,
                           overwrite=True)


def time_analyze(image, pixel_size_nm, model, repeats: int) -> dict:
    """Median/min/max/IQR of analyze() seconds and median seconds per stage."""
    from etem_helpers import analyze

    analyze(image, pixel_size_nm, model=model, device="cpu")  # warm-up: imports, model load
    totals, stages, n_particles = [], {s: [] for s in STAGES}, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = analyze(image, pixel_size_nm, model=model, device="cpu")
        totals.append(time.perf_counter() - start)
        for stage in STAGES:
            stages[stage].append(result.info["timing_s"].get(stage, 0.0))
        n_particles = result.n_particles
    q1, _, q3 = statistics.quantiles(totals, n=4)
    return {
        "median_s": statistics.median(totals),
        "min_s": min(totals),
        "max_s": max(totals),
        "iqr_s": q3 - q1,
        "stages_median_s": {s: statistics.median(v) for s, v in stages.items()},
        "n_particles": n_particles,
        "tiles": result.info["n_tiles"],
        "tile_px": result.info["tile_px"],
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: ``VmHWM`` of /proc/self/status (this program only; ``ru_maxrss`` of a child
    started by fork + exec also counts the parent's memory at the fork). Elsewhere:
    ``resource.getrusage`` (kilobytes on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def child_main(image_path: str, pixel_size_nm: float, model: str) -> None:
    """Run in the subprocess: analyze one large image, print a JSON line."""
    image = np.load(image_path)
    rss_before_mb = peak_rss_mb()
    from etem_helpers import analyze

    start = time.perf_counter()
    result = analyze(image, pixel_size_nm, model=model, device="cpu")
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_loading_image_mb": rss_before_mb,
        "n_particles": result.n_particles,
        "n_tiles": result.info["n_tiles"],
        "tile_px": result.info["tile_px"],
        "split": result.info["split"],
        "timing_s": result.info["timing_s"],
    }))


def run_large(size_px: int, tiles: list[np.ndarray], pixel_size_nm: float, model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large.npy"
        np.save(path, mosaic(tiles, size_px))
        command = [sys.executable, __file__, "--child", str(path), str(pixel_size_nm), model]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"The {size_px}² child process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timing_child(image_path: str, pixel_size_nm: float, model: str, repeats: int,
                 settings_json: str) -> None:
    """Run in a subprocess (PYTHONPATH = the tree to time): print the analyze() seconds."""
    from etem_helpers import analyze

    image = np.load(image_path)
    settings = json.loads(settings_json)
    analyze(image, pixel_size_nm, model=model, device="cpu", **settings)  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        analyze(image, pixel_size_nm, model=model, device="cpu", **settings)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def time_against(baseline_src: Path, image, pixel_size_nm: float, model: str, *,
                 settings: dict | None = None, rounds: int = 4, repeats: int = 5) -> dict:
    """analyze() seconds of this tree and of ``baseline_src``, interleaved, and their ratio.

    Each round runs both trees in fresh subprocesses (``PYTHONPATH`` set to each tree), one
    after the other, so that a change of machine load affects both alike. ``settings`` are
    passed to this tree's ``analyze()`` only (the baseline may not know them).
    """
    here = Path(__file__).resolve().parents[1]
    trees = {"this": here, "baseline": Path(baseline_src).resolve()}
    times: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.npy"
        np.save(path, image)
        for _ in range(rounds):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                given = json.dumps(settings or {}) if name == "this" else "{}"
                command = [sys.executable, __file__, "--time-child", str(path),
                           str(pixel_size_nm), model, str(repeats), given]
                done = subprocess.run(command, capture_output=True, text=True, env=env,
                                      cwd=tree, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"timing {tree} failed:\n{done.stderr[-2000:]}")
                times[name] += json.loads(done.stdout.strip().splitlines()[-1])
    medians = {name: statistics.median(v) for name, v in times.items()}
    return {"median_s": medians, "ratio": medians["this"] / medians["baseline"],
            "n_each": len(times["this"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls on 1024² (>= 7)")
    parser.add_argument("--large-size", type=int, default=8192, help="side of the large image")
    parser.add_argument("--skip-large", action="store_true", help="only the 1024² benchmark")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--against", default=None, metavar="SRC",
                        help="also time the 1024² call with the package in another source tree "
                        "(e.g. a git worktree of an older commit), interleaved, and print the "
                        "ratio this / that")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    import torch

    from etem_helpers.pipeline.analyzer import DEFAULT_MODEL_PATH

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is not None:
            model, note = str(Path(args.model).resolve()), "given with --model"
        elif DEFAULT_MODEL_PATH.is_file():
            model, note = str(DEFAULT_MODEL_PATH), "shipped default model"
        else:
            model = str(random_light_checkpoint(Path(tmp)))
            note = ("default.pt not found: light preset with RANDOM weights (predict timing "
                    "representative; split/measure are not)")
        load = os.getloadavg()
        print(f"model: {model} ({note})")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")

        image, pixel_size_nm, n_true = simulated_lowmag(1024)
        small = time_analyze(image, pixel_size_nm, model, args.repeats)
        print(f"\n1024 x 1024 low-mag micrograph, {pixel_size_nm:.3f} nm/px, {n_true} true "
              f"particles; {small['n_particles']} found; tiles {small['tiles']} of "
              f"{small['tile_px']}")
        print(f"analyze(): median {small['median_s']:.3f} s, min {small['min_s']:.3f}, "
              f"max {small['max_s']:.3f}, IQR {small['iqr_s']:.3f} ({args.repeats} repeats "
              "after 1 warm-up)")
        print("median seconds per stage: " + ", ".join(
            f"{k} {v:.3f}" for k, v in small["stages_median_s"].items()))

        if args.against:
            for label, settings in (("the stages of the old analyze(): no sizing, fault or "
                                     "annotation stage", PLAIN_SETTINGS), ("defaults", {})):
                ratio = time_against(Path(args.against), image, pixel_size_nm, model,
                                     settings=settings)
                print(f"\nthis tree ({label}) vs {args.against}: median "
                      f"{ratio['median_s']['this']:.3f} s vs {ratio['median_s']['baseline']:.3f} "
                      f"s, ratio {ratio['ratio']:.3f} ({ratio['n_each']} interleaved calls each)")
        if not args.skip_large:
            others = [simulated_lowmag(1024, seed=s)[0] for s in (1, 2, 3)]
            large = run_large(args.large_size, [image, *others], pixel_size_nm, model)
            print(f"\n{args.large_size} x {args.large_size} float32 mosaic in a subprocess: "
                  f"{large['seconds']:.1f} s, peak RSS {large['peak_rss_mb'] / 1024:.2f} GB "
                  f"(after loading the image: {large['rss_after_loading_image_mb'] / 1024:.2f} "
                  f"GB), {large['n_particles']} particles, {large['n_tiles']} tiles of "
                  f"{large['tile_px']}, split {large['split']}")
            print("seconds per stage: " + ", ".join(
                f"{k} {v:.2f}" for k, v in large["timing_s"].items()))
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 7 and sys.argv[1] == "--time-child":
        timing_child(sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        main()
