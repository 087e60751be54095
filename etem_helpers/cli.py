"""The ``etem`` command (``python -m etem_helpers``): simulate | train | finetune | analyze | compare | gan | course.

Each sub-command is the command-line face of one package function; ``etem <command> --help``
lists its options. A user error (a missing file, a bad value, an output that exists) ends the
command with exit status 2 and one line on stderr that says what to do, never a traceback
(set ``ETEM_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["analyze_files", "main", "run_guarded"]

COMMANDS = {
    "simulate": "simulate micrographs with exact ground truth into a dataset folder",
    "train": "train the segmentation U-Net from a JSON configuration",
    "analyze": "find and measure the particles of micrograph files (CSV + overlay PNG each)",
    "finetune": "adapt the segmentation model to a few of your own annotated micrographs",
    "compare": "compare methods against reference outlines: tables, figures and a summary",
    "gan": "train the mask-conditioned GAN, or draw a dataset of chosen particle sizes and shapes",
    "course": "run, strip or check the course notebooks",
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input is wrong": reported in one line, exit status 2."""
    from etem_helpers.datasets.real import RealDataUnavailableError
    from etem_helpers.io import MicrographError
    from etem_helpers.segmentation.checkpoint import CheckpointError

    return (ValueError, OSError, MicrographError, CheckpointError, RealDataUnavailableError)


#: Keyword arguments that the commands take as options: named as options in error messages.
_OPTIONS = ("overwrite", "n_images", "image_size_px", "n_jobs", "seed", "regime",
            "pixel_size_nm", "scale_bar_nm", "epochs", "device")


def _as_flags(message: str) -> str:
    """An error message in command-line terms: ``--option`` instead of ``option=True``, one line."""
    text = " ".join(message.split())
    for argument in _OPTIONS:
        option = "--" + argument.replace("_", "-")
        text = re.sub(rf"\b{argument}=True\b", option, text)
        text = re.sub(rf"\b{argument} must\b", f"{option} must", text)
        text = re.sub(rf"\b{argument}=", f"{option} ", text)
    return text


def run_guarded(function: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None,
                prog: str) -> int:
    """Run a command's ``main(argv)``; user errors become one line on stderr and exit status 2."""
    try:
        return int(function(argv) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        if os.environ.get("ETEM_DEBUG"):
            raise
        print(f"{prog}: error: {_as_flags(str(error)) or type(error).__name__}", file=sys.stderr)
        return 2


def _analyze_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etem analyze", description=COMMANDS["analyze"])
    parser.add_argument("files", nargs="+", type=Path, help="micrograph files (MRC, TIFF, DM3/4, "
                        "EMD, SER, PNG); their calibration is read from the file")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--pixel-size-nm", type=float, default=None,
                        help="pixel size in nm/px; overrides the files' calibration")
    parser.add_argument("--scale-bar-nm", type=float, default=None,
                        help="length of the scale bar burned into the images (nm): calibrate "
                        "from the bar instead of the file")
    parser.add_argument("--model", default="default", help="checkpoint (.pt); default: shipped")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def analyze_files(files: Sequence[Path], out_dir: Path, *, pixel_size_nm: float | None = None,
                  scale_bar_nm: float | None = None, model="default", device="auto",
                  overwrite: bool = False) -> list[Path]:
    """Analyse micrograph files; write ``<stem>_particles.csv`` and ``<stem>_overlay.png`` each.

    Every input and output is checked before anything is written: missing inputs, two inputs
    with the same name, or existing outputs (without ``overwrite``) stop the run at once.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from etem_helpers.io import read_micrograph
    from etem_helpers.pipeline import Analyzer
    from etem_helpers.plot import labels_overlay, save_png

    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")
    stems = [Path(f).stem for f in files]
    if len(set(stems)) != len(stems):
        raise ValueError("two input files share a name; analyse them into different --out folders")
    targets = [(out_dir / f"{s}_particles.csv", out_dir / f"{s}_overlay.png") for s in stems]
    existing = [str(p) for pair in targets for p in pair if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists (and {len(existing) - 1} more); "
                              "pass overwrite=True to replace them, or choose another folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(model, device=device)
    written = []
    for path, (csv_path, png_path) in zip(files, targets, strict=True):
        micrograph = read_micrograph(path, pixel_size_nm=pixel_size_nm,
                                     require_calibration=scale_bar_nm is None)
        result = analyzer(micrograph, scale_bar_nm=scale_bar_nm)
        written.append(result.to_csv(csv_path, overwrite=overwrite))
        written.append(save_png(labels_overlay(micrograph.image, result.labels), png_path,
                                overwrite=overwrite))
        print(f"{path}: {result.n_particles} particles at {result.pixel_size_nm:.4g} nm/px "
              f"({result.pixel_size_source}) -> {csv_path}")
    return written


def _analyze_main(argv: Sequence[str] | None) -> int:
    args = _analyze_parser().parse_args(argv)
    analyze_files(args.files, args.out, pixel_size_nm=args.pixel_size_nm,
                  scale_bar_nm=args.scale_bar_nm, model=args.model, device=args.device,
                  overwrite=args.overwrite)
    return 0


def _command(name: str) -> Callable[[Sequence[str] | None], int]:
    if name == "simulate":
        from etem_helpers.simulate.__main__ import main
    elif name == "train":
        from etem_helpers.segmentation.train import main
    elif name == "finetune":
        from etem_helpers.segmentation.finetune import main
    elif name == "compare":
        from etem_helpers.stats.cli import compare_command as main
    elif name == "gan":
        from etem_helpers.gan.cli import gan_command as main
    elif name == "course":
        from etem_helpers.course import main
    else:
        main = _analyze_main
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``etem``: ``etem <command> [options]``; ``etem --help`` lists commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="etem", description=__doc__.splitlines()[0],
        epilog="Commands: " + "; ".join(f"{k}: {v}" for k, v in COMMANDS.items())
        + ". Run 'etem <command> --help' for its options.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to do")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="options of the command")
    args = parser.parse_args(argv[:1])
    return run_guarded(_command(args.command), argv[1:], f"etem {args.command}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
