"""Figures shared by the notebooks and the command line (matplotlib imported only when drawn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from etem_helpers.preprocess.normalize import normalize_image

__all__ = [
    "instance_maps",
    "labels_overlay",
    "loss_curves",
    "mask_comparison",
    "method_scores",
    "probability_maps",
    "save_figure",
    "save_png",
    "show_image",
    "sim_vs_real",
    "threshold_masks",
    "tile_layout",
    "training_batch",
]

#: RGB colour (0–255) of particle outlines in :func:`labels_overlay`.
OUTLINE_RGB = (255, 200, 0)


def labels_overlay(image: np.ndarray, labels: np.ndarray, *, rgb=OUTLINE_RGB) -> np.ndarray:
    """The micrograph in grey with every particle's outline drawn in colour.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) micrograph, any real dtype (shown with percentile normalisation).
    labels : numpy.ndarray
        (H, W) instance labels (0 background), e.g. ``AnalysisResult.labels``.
    rgb : (int, int, int)
        Outline colour.

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8 image.
    """
    from skimage.segmentation import find_boundaries

    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape; pass "
                         "the labels of this image.")
    grey = (normalize_image(image) * 255).astype(np.uint8)
    out = np.repeat(grey[..., None], 3, axis=2)
    out[find_boundaries(labels, mode="inner")] = rgb
    return out


def save_png(rgb: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an (H, W, 3) uint8 image as PNG; an existing file is replaced only with ``overwrite``."""
    from PIL import Image

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to "
                              "replace it, or choose another folder.")
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path, format="PNG")
    return path


# --------------------------------------------------------------------------------------------
# Notebook figures: the styling and plumbing of the course figures, so that a notebook cell
# shows what it computes, not 40 lines of axes handling. Each returns a pyplot figure (shown
# inline in a notebook); nothing here computes a result that the notebooks report.
# --------------------------------------------------------------------------------------------
def save_figure(fig, directory: str | os.PathLike, name: str, figures: dict | None = None,
                *, dpi: int = 110) -> Path:
    """Save a figure as ``directory/name.png`` and (optionally) remember its path.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    directory : str or path-like
        Output folder (created if needed).
    name : str
        File name without extension; also the key in ``figures``.
    figures : dict, optional
        ``{name: path}`` record (e.g. the figures listed in a notebook's results); updated in place.
    dpi : int
        Resolution in dots per inch.

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if figures is not None:
        figures[name] = str(path)
    return path


def show_image(ax, image: np.ndarray, *, pixel_size_nm: float | None = None,
               labels: np.ndarray | None = None, title: str | None = None,
               outline: str = "red", percentiles: tuple[float, float] = (0.5, 99.5)) -> None:
    """Show a micrograph in grey (percentile contrast), optionally with outlines and a scale bar.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    image : numpy.ndarray
        (H, W) image, any real dtype.
    pixel_size_nm : float, optional
        nm/px; draws a scale bar when given.
    labels : numpy.ndarray, optional
        (H, W) mask or instance labels; the outline of ``labels > 0`` is drawn.
    title : str, optional
        Axis title (small font).
    outline : str
        Colour of the outlines.
    percentiles : (float, float)
        Grey levels shown as black and white (percentiles of the image, 0–100).
    """
    from etem_helpers.widgets import add_scale_bar

    image = np.asarray(image, dtype=np.float32)
    low, high = np.percentile(image, percentiles)
    ax.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1)
    if labels is not None:
        ax.contour(np.asarray(labels) > 0, levels=[0.5], colors=outline, linewidths=0.6)
    if pixel_size_nm is not None:
        add_scale_bar(ax, float(pixel_size_nm), image.shape)
    if title is not None:
        ax.set_title(title, fontsize="small")
    ax.set_axis_off()


def tile_layout(image: np.ndarray, positions, tile_px: int, *,
                pixel_size_nm: float | None = None):
    """An image with the outlines of the tiles it is cut into.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) image.
    positions : sequence of (int, int)
        Top-left corner ``(y, x)`` of each tile (:func:`etem_helpers.preprocess.tile_image`).
    tile_px : int
        Tile side in pixels.
    pixel_size_nm : float, optional
        nm/px, for a scale bar.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    show_image(ax, image, pixel_size_nm=pixel_size_nm,
               title=f"{len(positions)} overlapping tiles of {tile_px} px")
    for (y, x), colour in zip(positions, plt.cm.tab10.colors * (len(positions) // 10 + 1),
                              strict=False):
        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), tile_px, tile_px, fill=False,
                                   edgecolor=colour, lw=1.5))
    return fig


def _diameters_px(labels: np.ndarray) -> np.ndarray:
    """Area-equivalent diameters (px) of the objects of a mask (8-connected) or label map."""
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels, _ = ndimage.label(labels, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel())[1:]
    return 2 * np.sqrt(areas[areas > 0] / np.pi)


def sim_vs_real(real, simulated, *, n_examples: int = 3, attribution: str = ""):
    """Real and simulated micrographs side by side, with intensity and particle-size histograms.

    Parameters
    ----------
    real : sequence of (image, mask, name)
        Real micrographs with their (hand-drawn) masks.
    simulated : sequence of (image, labels, pixel_size_nm)
        Simulated micrographs with their true labels.
    n_examples : int
        Image pairs shown (every third real image, the first simulated ones).
    attribution : str
        Credit line printed under the figure.

    Returns
    -------
    matplotlib.figure.Figure
        Images with outlines (top real, bottom simulated); histograms of the normalised
        intensities (0.5–99.5 % percentiles) and of the area-equivalent diameters in pixels.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 6.6), layout="constrained")
    grid = fig.add_gridspec(2, n_examples + 1)
    for column in range(n_examples):
        image, mask, name = real[(column * 3) % len(real)]
        show_image(fig.add_subplot(grid[0, column]), image, labels=mask,
                   title=f"real: {name} ({image.shape[0]} px, pixel size unknown)")
        image, labels, pixel_size_nm = simulated[column % len(simulated)]
        show_image(fig.add_subplot(grid[1, column]), image, labels=labels,
                   pixel_size_nm=pixel_size_nm,
                   title=f"simulated ({image.shape[0]} px, {pixel_size_nm:.2f} nm/px)")
    values = {"real": np.concatenate([normalize_image(r[0]).ravel() for r in real]),
              "simulated": np.concatenate([normalize_image(s[0]).ravel() for s in simulated])}
    sizes = {"real masks": np.concatenate([_diameters_px(r[1]) for r in real]),
             "simulated labels": np.concatenate([_diameters_px(s[1]) for s in simulated])}
    ax = fig.add_subplot(grid[0, n_examples])
    for label, v in values.items():
        ax.hist(v, bins=np.linspace(0, 1, 51), density=True, alpha=0.6, label=label)
    ax.set(xlabel="normalised intensity (0.5–99.5 % percentiles)", ylabel="density",
           title="Intensity histograms")
    ax.legend()
    ax = fig.add_subplot(grid[1, n_examples])
    bins = np.linspace(0, max(v.max() for v in sizes.values()), 30)
    for label, v in sizes.items():
        ax.hist(v, bins=bins, density=True, alpha=0.6, label=f"{label} ({len(v)})")
    ax.set(xlabel="area-equivalent diameter (px)", ylabel="density",
           title="Particle sizes in pixels")
    ax.legend()
    fig.suptitle("Real vs simulated low-magnification TEM (red: masks)")
    if attribution:
        fig.text(0.5, -0.02, attribution, ha="center", va="top", fontsize=7, wrap=True)
    return fig


def training_batch(images, targets, *, n_show: int = 4):
    """Training crops as the network sees them, with the outlines of both target channels.

    Parameters
    ----------
    images : array-like, shape (B, 1, H, W)
        A batch of normalised crops (a torch tensor or NumPy array).
    targets : array-like, shape (B, C, H, W)
        Their targets: channel 0 foreground (red outline), channel 1 contact band (cyan).
    n_show : int
        Crops shown (at most B).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    images, targets = np.asarray(images), np.asarray(targets)
    n_show = min(n_show, len(images))
    fig, axes = plt.subplots(1, n_show, figsize=(2.6 * n_show, 2.9), layout="constrained",
                             squeeze=False)
    for ax, image, target in zip(axes[0], images, targets, strict=False):
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        ax.contour(target[0], levels=[0.5], colors="red", linewidths=0.7)
        if target.shape[0] > 1 and target[1].any():
            ax.contour(target[1], levels=[0.5], colors="cyan", linewidths=0.7)
        ax.set_axis_off()
    fig.suptitle("One training batch: augmented crops, foreground (red) and contact band (cyan)",
                 fontsize="medium")
    return fig


def loss_curves(history: dict, *, axes=None):
    """Training and validation loss, and validation Dice, per epoch.

    Parameters
    ----------
    history : dict
        ``epoch``, ``train_loss``, ``val_loss``, ``val_dice`` lists (as returned by
        :func:`etem_helpers.segmentation.train.train_segmentation`).
    axes : (Axes, Axes), optional
        Draw into these (cleared first), e.g. to update a live figure; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    ax_loss, ax_dice = axes
    ax_loss.clear()
    ax_dice.clear()
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax_loss.plot(history["epoch"], history["val_loss"], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="Dice + BCE loss", title="Loss")
    ax_loss.legend()
    ax_dice.plot(history["epoch"], history["val_dice"], "s-", color="tab:green")
    ax_dice.set(xlabel="epoch", ylabel="Dice", ylim=(0, 1), title="Validation Dice (threshold 0.5)")
    return ax_loss.figure


def probability_maps(image: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, *,
                     pixel_size_nm: float, title: str = ""):
    """A micrograph, its true foreground, and the predicted foreground and boundary probability.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W) micrograph.
    labels : numpy.ndarray
        (H, W) true instance labels.
    probabilities : numpy.ndarray
        (2, H, W) foreground and contact-boundary probabilities (0–1).
    pixel_size_nm : float
        nm/px, for the scale bar.
    title : str
        Title of the image panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
    show_image(axes[0], image, pixel_size_nm=pixel_size_nm, title=title)
    axes[1].imshow(np.asarray(labels) > 0, cmap="gray")
    axes[1].set_title("true foreground", fontsize="small")
    for ax, channel, name in ((axes[2], 0, "foreground"), (axes[3], 1, "boundary")):
        shown = ax.imshow(probabilities[channel], cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"{name} probability", fontsize="small")
    fig.colorbar(shown, ax=axes[3], shrink=0.8)
    for ax in axes[1:]:
        ax.set_axis_off()
    return fig


def threshold_masks(probability: np.ndarray, labels: np.ndarray, thresholds, dice_scores):
    """Masks of a foreground probability map at several thresholds, with the true outlines.

    Parameters
    ----------
    probability : numpy.ndarray
        (H, W) foreground probability.
    labels : numpy.ndarray
        (H, W) true labels (outlined in red).
    thresholds : sequence of float
        Thresholds (0–1), one panel each.
    dice_scores : sequence of float
        The Dice score of each thresholded mask (computed by the caller), shown in the titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(thresholds), figsize=(3.4 * len(thresholds), 3.6),
                             layout="constrained", squeeze=False)
    for ax, threshold, dice in zip(axes[0], thresholds, dice_scores, strict=True):
        ax.imshow(probability >= threshold, cmap="gray")
        ax.contour(np.asarray(labels) > 0, levels=[0.5], colors="red", linewidths=0.6)
        ax.set_title(f"threshold {threshold:.2f}: Dice {dice:.3f}", fontsize="small")
        ax.set_axis_off()
    fig.suptitle("Thresholded foreground (white) and the true outlines (red)", fontsize="medium")
    return fig


def instance_maps(panels: dict, *, count: bool = True):
    """Instance label maps side by side, each particle in its own colour, with counts.

    Parameters
    ----------
    panels : dict
        ``{title: (H, W) instance labels}`` (or 0/1 masks, with ``count=False``).
    count : bool
        Add the number of particles (distinct nonzero labels) to each title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.7 * len(panels), 3.8),
                             layout="constrained", squeeze=False)
    for ax, (title, labels) in zip(axes[0], panels.items(), strict=True):
        labels = np.asarray(labels)
        n_found = len(np.unique(labels[labels > 0]))
        ax.imshow(np.where(labels > 0, labels % 20 + 1, 0), cmap="tab20", interpolation="nearest")
        ax.set_title(f"{title}: {n_found} particles" if count else title, fontsize="small")
        ax.set_axis_off()
    return fig


def method_scores(table, *, columns=("pixel_dice", "pixel_iou", "precision", "recall", "f1"),
                  error_column: str | None = "diameter_mae_nm", title: str = ""):
    """Bar charts comparing segmentation methods: scores (higher is better) and a size error.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per method (index: method name), e.g. ``pd.DataFrame(evaluation.pooled()).T``.
    columns : sequence of str
        Score columns (0–1) drawn as grouped bars.
    error_column : str or None
        A column in nm drawn as horizontal bars on the right (None: no second panel).
    title : str
        Title of the score panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n_panels = 2 if error_column else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(13 if error_column else 9, 3.8),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1][:n_panels]})
    table[list(columns)].astype(float).plot.bar(ax=axes[0, 0], rot=0, ylim=(0, 1))
    axes[0, 0].set(ylabel="score (higher is better)", title=title)
    axes[0, 0].legend(fontsize="small", ncols=len(columns), loc="upper center")
    axes[0, 0].tick_params(axis="x", labelsize="small")
    if error_column:
        table[error_column].astype(float).plot.barh(ax=axes[0, 1], color="tab:gray")
        axes[0, 1].invert_yaxis()
        axes[0, 1].set(xlabel="nm (lower is better)", title="Diameter MAE of matched particles")
    return fig


def mask_comparison(samples, predictions: dict, *, n_show: int = 3, attribution: str = ""):
    """Images with their true outlines (red), and each method's predicted foreground.

    Parameters
    ----------
    samples : sequence of (name, image, true_labels, pixel_size_nm)
        As yielded by :func:`etem_helpers.datasets.iter_samples` or
        :func:`etem_helpers.datasets.real.sintering_samples`.
    predictions : dict
        ``{method: [labels per sample]}``.
    n_show : int
        Rows (samples) shown.
    attribution : str
        Credit line under the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from etem_helpers.metrics.pixel import dice_coefficient

    n_show = min(n_show, len(samples))
    n_columns = 1 + len(predictions)
    fig, axes = plt.subplots(n_show, n_columns, figsize=(2.8 * n_columns, 2.9 * n_show),
                             layout="constrained", squeeze=False)
    for row in range(n_show):
        name, image, truth, _ = samples[row]
        show_image(axes[row, 0], image, labels=truth, title=f"{name} + true outlines")
        for column, (method, labels) in enumerate(predictions.items(), start=1):
            mask = np.asarray(labels[row]) > 0
            axes[row, column].imshow(mask, cmap="gray")
            axes[row, column].contour(np.asarray(truth) > 0, levels=[0.5], colors="red",
                                      linewidths=0.5)
            axes[row, column].set_title(
                f"{method}\nDice {dice_coefficient(mask, np.asarray(truth) > 0):.2f}",
                fontsize="small")
            axes[row, column].set_axis_off()
    if attribution:
        fig.text(0.5, -0.01, attribution, ha="center", va="top", fontsize=7, wrap=True)
    return fig
