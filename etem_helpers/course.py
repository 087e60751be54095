"""Run, check and clean the course notebooks.

Used by ``make run`` (execute every notebook in order), ``make strip`` (clear outputs) and the
notebook tests. Command line::

    python -m etem_helpers.course run --profile quick --output outputs
    python -m etem_helpers.course strip
    python -m etem_helpers.course check

Each notebook saves its key results with :func:`save_results` as ``OUTPUT_DIR/NN_results.json``;
:func:`execute_notebook` returns them together with the wall time and the kernel's peak memory.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

from etem_helpers.io import replace_atomically

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NOTEBOOK_DIR = REPOSITORY_ROOT / "notebooks"
GITHUB_REPOSITORY = "etem-notebooks/etem-notebooks"
GITHUB_BRANCH = "main"


def colab_url(notebook_name: str) -> str:
    """Open-in-Colab address of a course notebook on the main branch."""
    return (
        f"https://colab.research.google.com/github/{GITHUB_REPOSITORY}/blob/{GITHUB_BRANCH}/"
        f"notebooks/{notebook_name}"
    )


def binder_url(notebook_name: str | None = None) -> str:
    """mybinder.org address of the repository (opening JupyterLab, optionally on one notebook)."""
    url = f"https://mybinder.org/v2/gh/{GITHUB_REPOSITORY}/{GITHUB_BRANCH}"
    return url + (f"?labpath=notebooks/{notebook_name}" if notebook_name else "")


def list_notebooks(notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR) -> list[Path]:
    """Return the course notebooks ``NN_slug.ipynb`` in ``notebook_dir``, ordered by number."""
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise FileNotFoundError(
            f"Notebook folder {notebook_dir} does not exist; pass the 'notebooks/' folder of a clone "
            "of the etem-notebooks repository."
        )
    return sorted(p for p in notebook_dir.iterdir() if NOTEBOOK_PATTERN.match(p.name))


def select_notebooks(
    notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR, only: list[str] | None = None
) -> list[Path]:
    """The course notebooks in ``notebook_dir``, or those numbered in ``only``.

    Raises
    ------
    FileNotFoundError
        The folder does not exist or holds no ``NN_slug.ipynb`` notebook.
    ValueError
        An entry of ``only`` is not a number, or no notebook has that number (the message
        lists the numbers there are).
    """
    notebooks = list_notebooks(notebook_dir)
    if not notebooks:
        raise FileNotFoundError(
            f"No course notebooks (NN_slug.ipynb) found in {notebook_dir}; pass the 'notebooks/' "
            "folder of a clone of the etem-notebooks repository (--notebooks)."
        )
    if not only:
        return notebooks
    available = [p.name[:2] for p in notebooks]
    wanted = []
    for number in only:
        if not str(number).strip().isdigit():
            raise ValueError(f"--only {number!r} is not a notebook number; choose from {available}.")
        wanted.append(f"{int(number):02d}")
    missing = [n for n in wanted if n not in available]
    if missing:
        raise ValueError(
            f"--only {' '.join(missing)}: no such notebook in {notebook_dir}; the notebooks are "
            f"numbered {' '.join(available)}."
        )
    return [p for p in notebooks if p.name[:2] in wanted]


def find_notebook(number: int | str, notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR) -> Path:
    """Return the notebook whose name starts with the two-digit ``number``."""
    prefix = f"{int(number):02d}_"
    matches = [p for p in list_notebooks(notebook_dir) if p.name.startswith(prefix)]
    if len(matches) != 1:
        raise FileNotFoundError(f"Expected one notebook named {prefix}*.ipynb in {notebook_dir}, found {matches}.")
    return matches[0]


def results_path(output_dir: str | Path, number: int | str) -> Path:
    """Path of the JSON results file of notebook ``number`` inside ``output_dir``."""
    return Path(output_dir) / f"{int(number):02d}_results.json"


def _to_jsonable(value):
    """Convert NumPy scalars/arrays and Paths so that ``json.dumps`` accepts them."""
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return value.tolist()
    return value


def save_results(output_dir: str | Path, number: int | str, results: dict) -> Path:
    """Write a notebook's key results as JSON (``OUTPUT_DIR/NN_results.json``) and return the path."""
    path = results_path(output_dir, number)
    text = json.dumps(_to_jsonable(results), indent=2, sort_keys=True) + "\n"  # fails first
    with replace_atomically(path) as tmp:
        tmp.write_text(text)
    return path


def _private_memory_bytes(process) -> int:
    """Unique set size (pages only this process holds) where the OS reports it, else RSS."""
    try:
        return process.memory_full_info().uss
    except AttributeError:  # no USS on this platform
        return process.memory_info().rss


class _PeakMemoryMonitor:
    """Poll the memory of this process's child processes (the Jupyter kernel and its workers)."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for kernel in me.children():
                try:
                    # The kernel in full (RSS, with its libraries), plus what its worker processes
                    # add on their own (USS): pages they share with the kernel are not counted twice.
                    total += kernel.memory_info().rss
                    total += sum(_private_memory_bytes(worker) for worker in kernel.children(recursive=True))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def execute_notebook(
    notebook: str | Path,
    output_dir: str | Path,
    *,
    profile: str = "quick",
    data_dir: str | Path | None = None,
    parameters: dict | None = None,
    kernel_name: str = "python3",
    cell_timeout_s: int = 3600,
) -> dict:
    """Execute one notebook with papermill and report what happened.

    Parameters
    ----------
    notebook : str or Path
        The source notebook (left unchanged).
    output_dir : str or Path
        Receives the executed notebook (``executed/NN_slug.ipynb``) and the notebook's results.
    profile : str
        Injected as ``PROFILE``.
    data_dir : str or Path, optional
        Injected as ``DATA_DIR`` (default: ``output_dir/data``).
    parameters : dict, optional
        Further parameters to inject (UPPER_CASE names of the notebook's ``parameters`` cell).
        ``INTERACTIVE`` is injected as False unless given here.
    kernel_name : str
        Jupyter kernel to use.
    cell_timeout_s : int
        Per-cell time limit, in seconds.

    Returns
    -------
    dict
        ``notebook``, ``seconds`` (wall time), ``peak_rss_mb`` (peak memory of the kernel process
        tree, sampled every 0.1 s: the kernel's resident size plus the private memory of its worker
        processes, so that pages workers share with the kernel count once), ``executed`` (path) and ``results`` (the notebook's JSON).
    """
    import papermill

    notebook = Path(notebook).resolve()
    output_dir = Path(output_dir).resolve()
    executed = output_dir / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    number = notebook.name[:2]
    results_file = results_path(output_dir, number)
    if results_file.exists():
        results_file.unlink()  # never report a stale result of an earlier run
    injected = {
        "PROFILE": profile,
        "OUTPUT_DIR": str(output_dir),
        "DATA_DIR": str(Path(data_dir).resolve() if data_dir else output_dir / "data"),
        # Nobody can move a slider in a headless run, and displaying interactive ipywidgets under
        # papermill can hang the kernel (nteract/papermill#723): notebooks skip them when False.
        "INTERACTIVE": False,
        **(parameters or {}),
    }
    start = time.perf_counter()
    with _PeakMemoryMonitor() as monitor:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=injected,
            kernel_name=kernel_name,
            cwd=str(notebook.parent),
            progress_bar=False,
            execution_timeout=cell_timeout_s,
        )
    seconds = time.perf_counter() - start
    results = json.loads(results_file.read_text()) if results_file.exists() else None
    return {
        "notebook": notebook.name,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(monitor.peak_bytes / 2**20, 1),
        "executed": str(executed),
        "results": results,
    }


def run_course(
    output_dir: str | Path = "outputs",
    *,
    profile: str = "quick",
    notebook_dir: str | Path = DEFAULT_NOTEBOOK_DIR,
    only: list[str] | None = None,
) -> dict:
    """Execute every notebook in order; write ``summary.json`` and ``summary.md`` in ``output_dir``."""
    output_dir = Path(output_dir).resolve()
    notebooks = select_notebooks(notebook_dir, only)
    runs = []
    for notebook in notebooks:
        print(f"[etem] running {notebook.name} (profile {profile}) ...", flush=True)
        run = execute_notebook(notebook, output_dir, profile=profile)
        print(f"[etem]   done in {run['seconds']:.1f} s, kernel peak {run['peak_rss_mb']:.0f} MB", flush=True)
        runs.append(run)
    summary = {"profile": profile, "total_seconds": round(sum(r["seconds"] for r in runs), 2), "runs": runs}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output_dir / "summary.md").write_text(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    """Markdown table of a course run: notebook, seconds, peak memory, key results."""
    lines = [
        f"# Course run ({summary['profile']} profile): {summary['total_seconds']:.0f} s in total",
        "",
        "| notebook | seconds | kernel peak (MB) | key results |",
        "| --- | ---: | ---: | --- |",
    ]
    for run in summary["runs"]:
        key = (run.get("results") or {}).get("key_results", {})
        text = ", ".join(f"{k}={v}" for k, v in key.items()) or "(none saved)"
        lines.append(f"| {run['notebook']} | {run['seconds']:.1f} | {run['peak_rss_mb']:.0f} | {text} |")
    return "\n".join(lines) + "\n"


def notebook_problems(path: str | Path) -> list[str]:
    """List hygiene problems of a committed notebook (outputs, counts, kernelspec, parameters cell)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    problems = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    with_outputs = [i for i, c in enumerate(code_cells) if c.get("outputs") or c.get("execution_count")]
    if with_outputs:
        problems.append(f"{path.name}: {len(with_outputs)} code cell(s) hold outputs or execution counts; run 'make strip'")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"{path.name}: kernelspec is {kernel!r}, expected 'python3'")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly 1")
    return problems


def strip_notebook(path: str | Path) -> bool:
    """Clear outputs and execution counts and set the ``python3`` kernelspec; return True if changed."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after)
    return after != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="etem course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute every notebook in order with papermill")
    run.add_argument("--profile", default="quick", help="smoke, quick, full or auto (default quick)")
    run.add_argument("--output", default="outputs", help="output folder (default outputs/)")
    run.add_argument("--notebooks", default=str(DEFAULT_NOTEBOOK_DIR))
    run.add_argument("--only", nargs="*", help="notebook numbers to run, e.g. 00 01")
    strip = sub.add_parser("strip", help="clear outputs of the course notebooks")
    strip.add_argument("--notebooks", default=str(DEFAULT_NOTEBOOK_DIR))
    check = sub.add_parser("check", help="report notebooks with outputs, wrong kernelspec or no parameters cell")
    check.add_argument("--notebooks", default=str(DEFAULT_NOTEBOOK_DIR))
    args = parser.parse_args(argv)
    try:
        return _run_command(args)
    except (ValueError, FileNotFoundError) as error:  # user errors: one line, exit status 2
        print(f"{parser.prog} {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _run_command(args: argparse.Namespace) -> int:
    """The work of :func:`main` for parsed arguments (user errors raise ValueError/FileNotFoundError)."""
    if args.command == "run":
        select_notebooks(args.notebooks, args.only)  # refuse bad --only before any work
        summary = run_course(args.output, profile=args.profile, notebook_dir=args.notebooks, only=args.only)
        print(format_summary(summary))
        return 0
    notebooks = select_notebooks(args.notebooks)
    if args.command == "strip":
        for path in notebooks:
            if strip_notebook(path):
                print(f"stripped {path}")
        return 0
    problems = [p for path in notebooks for p in notebook_problems(path)]
    print("\n".join(problems) or f"all {len(notebooks)} notebooks clean")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
