"""The CTF / image-formation explorer: a static figure and a thin ipywidgets layer.

:func:`explorer_figure` simulates one HRTEM micrograph for the given optics and shows three
panels: the image (with a scale bar in nm), its power spectrum (Thon rings) and the 1-D
contrast transfer function ``-sin(chi) * envelope`` with the measured minima of the radial
power spectrum marked against the predicted zeros of ``sin(chi)``. :func:`ctf_explorer`
wraps it in sliders for notebooks.

The computation (:func:`explorer_data`, :func:`thon_ring_errors`) is separate from the
plotting (:func:`plot_explorer`), so tests and notebooks can check the numbers behind every
figure. Figures are :class:`matplotlib.figure.Figure` objects built without ``pyplot``: they
are never registered with a global figure manager and never leak.

Nothing runs at import; ipywidgets and IPython are imported only by :func:`ctf_explorer`.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from . import spectra
from .io import check_image, validate_pixel_size
from .simulate import optics

__all__ = [
    "add_scale_bar",
    "ctf_explorer",
    "explorer_controls",
    "explorer_data",
    "explorer_figure",
    "figure_png",
    "plot_explorer",
    "thon_ring_errors",
]

#: Minima of the radial power spectrum below this frequency (1/nm) are not reported: the
#: carbon film's long-range undulation and the particle shapes dominate there.
_K_MIN_PER_NM = 0.8
#: Envelope level that defines the information limit shown in the figure (e^-2, as used by
#: the simulator's ``lattice_transferred``).
_INFO_LIMIT_LEVEL = math.exp(-2.0)
_NICE_LENGTHS_NM = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


# --------------------------------------------------------------------------------------
# Small plotting helpers
# --------------------------------------------------------------------------------------
def add_scale_bar(
    ax,
    pixel_size_nm: float,
    image_shape,
    *,
    length_nm: float | None = None,
    color: str = "white",
    fraction: float = 0.2,
) -> float:
    """Draw a scale bar in the lower-left corner of an image axis.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axis showing the image with ``imshow`` in pixel coordinates.
    pixel_size_nm : float
        Pixel size of the image in nm/px.
    image_shape : tuple of int
        ``(height, width)`` of the image in pixels.
    length_nm : float, optional
        Bar length in nm; default a round number (1, 2, 5 x 10^n) close to ``fraction`` of
        the image width.
    color : str, optional
        Bar and text colour.
    fraction : float, optional
        Target bar length as a fraction of the image width (used when ``length_nm`` is None).

    Returns
    -------
    float
        The bar length in nm.
    """
    pixel_size_nm = validate_pixel_size(
        pixel_size_nm, argument="pixel_size_nm",
        quantity="the pixel size in nm per pixel (a scale bar needs the calibration)",
    )
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    if length_nm is None:
        target = fraction * width * pixel_size_nm
        length_nm = min(_NICE_LENGTHS_NM, key=lambda v: abs(math.log(v / target)))
    length_px = length_nm / pixel_size_nm
    x0, y0 = 0.05 * width, 0.92 * height
    ax.plot([x0, x0 + length_px], [y0, y0], color=color, lw=4, solid_capstyle="butt",
            gid="scale_bar")
    label = f"{length_nm:g} nm"
    ax.text(x0 + length_px / 2, y0 - 0.03 * height, label, color=color, ha="center",
            va="bottom", fontsize="small", fontweight="bold")
    return float(length_nm)


def figure_png(fig, *, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes (no pyplot, no display needed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    dpi : int, optional
        Resolution in dots per inch.

    Returns
    -------
    bytes
        The PNG file content.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Thon rings: measured minima against predicted zeros
# --------------------------------------------------------------------------------------
def _total_envelope(k, *, voltage_kv, defocus_nm, cs_mm, focal_spread_nm, convergence_mrad,
                    info_limit_nm):
    envelope = optics.ctf_curve(k, voltage_kv=voltage_kv, defocus_nm=defocus_nm, cs_mm=cs_mm,
                                focal_spread_nm=focal_spread_nm,
                                convergence_mrad=convergence_mrad)["envelope"]
    return envelope * optics.info_limit_envelope(k, info_limit_nm=info_limit_nm)


def thon_ring_errors(
    image,
    pixel_size_nm: float,
    *,
    voltage_kv: float,
    defocus_nm: float,
    cs_mm: float,
    focal_spread_nm: float = 0.0,
    convergence_mrad: float = 0.0,
    info_limit_nm: float | None = None,
    k_min_per_nm: float = _K_MIN_PER_NM,
    min_envelope: float = 0.3,
    min_spacing_px: float = 4.0,
    smooth_bins: float = 1.0,
) -> pd.DataFrame:
    """Compare the minima of an image's radial power spectrum with the zeros of sin(chi).

    The predicted zeros come from :func:`etem_helpers.simulate.optics.ctf_zeros_per_nm`.
    Only zeros that the image can show are compared: between ``k_min_per_nm`` and Nyquist,
    where the envelope (temporal x spatial x information limit) is at least
    ``min_envelope``, and at least ``min_spacing_px`` Fourier pixels away from both
    neighbouring zeros (closer rings blur together). Each such zero is matched to the
    nearest measured minimum (:func:`etem_helpers.spectra.find_minima`) within half the
    distance to its nearest neighbouring zero.

    Use an image of the support film alone (carbon, no particles): particles add their own
    spectrum (shape transform, lattice peaks) and shift the minima.

    Parameters
    ----------
    image : array_like
        Real 2-D micrograph.
    pixel_size_nm : float
        Pixel size in nm/px.
    voltage_kv : float
        Accelerating voltage in kV.
    defocus_nm : float
        Defocus in nm (> 0 underfocus, Kirkland convention).
    cs_mm : float
        Spherical aberration in mm.
    focal_spread_nm, convergence_mrad : float, optional
        Focal spread (nm) and illumination semi-angle (mrad) of the envelopes.
    info_limit_nm : float or None, optional
        Extra Gaussian information limit in nm (environmental gas), or None.
    k_min_per_nm : float, optional
        Lowest frequency considered, in 1/nm.
    min_envelope : float, optional
        Lowest envelope value (0-1) at which a zero is compared.
    min_spacing_px : float, optional
        Minimum distance to the neighbouring zeros, in Fourier pixels ``1 / (N p)``.
    smooth_bins : float, optional
        Gaussian smoothing of the radial profile, in bins (see ``find_minima``).

    Returns
    -------
    pandas.DataFrame
        One row per compared zero: ``ring`` (1 = first zero above ``k_min_per_nm``),
        ``predicted_per_nm``, ``measured_per_nm`` (NaN when no minimum matched),
        ``relative_error`` (``|measured - predicted| / predicted``, NaN when unmatched) and
        ``envelope``.
    """
    img = check_image(image, dtype=np.float64)
    p = validate_pixel_size(pixel_size_nm, argument="pixel_size_nm")
    nyquist = 0.5 / p
    fourier_px = 1.0 / (min(img.shape) * p)
    power = spectra.power_spectrum(img)
    k, profile = spectra.radial_profile(power, p)
    measured = spectra.find_minima(k, profile, k_min=k_min_per_nm, k_max=nyquist,
                                   smooth_bins=smooth_bins)
    zeros = optics.ctf_zeros_per_nm(voltage_kv=voltage_kv, defocus_nm=defocus_nm, cs_mm=cs_mm,
                                    k_max_per_nm=nyquist)
    envelope = _total_envelope(zeros, voltage_kv=voltage_kv, defocus_nm=defocus_nm, cs_mm=cs_mm,
                               focal_spread_nm=focal_spread_nm,
                               convergence_mrad=convergence_mrad, info_limit_nm=info_limit_nm)
    rows = []
    for i, zero in enumerate(zeros):
        if zero < k_min_per_nm or envelope[i] < min_envelope:
            continue
        gaps = [zero - zeros[i - 1] if i > 0 else zero,
                zeros[i + 1] - zero if i + 1 < len(zeros) else nyquist - zero]
        if min(gaps) < min_spacing_px * fourier_px:
            continue
        found = float("nan")
        if measured.size:
            nearest = float(measured[np.argmin(np.abs(measured - zero))])
            if abs(nearest - zero) <= 0.5 * min(gaps):
                found = nearest
        rows.append({"predicted_per_nm": float(zero), "measured_per_nm": found,
                     "relative_error": abs(found - zero) / zero, "envelope": float(envelope[i])})
    table = pd.DataFrame(rows, columns=["predicted_per_nm", "measured_per_nm", "relative_error",
                                        "envelope"])
    table.insert(0, "ring", np.arange(1, len(table) + 1))
    return table


# --------------------------------------------------------------------------------------
# The explorer: data, figure, widget
# --------------------------------------------------------------------------------------
def _explorer_params(*, defocus_nm, cs_mm, dose_e_per_a2, pixel_size_nm, gas_fraction,
                     voltage_kv, image_size_px, n_particles, gas_info_limit_nm):
    from .simulate import SimulationParams

    # Particles that fit any HRTEM field: 3-8 nm, but at most 40 % of the field of view.
    fov = float(image_size_px) * float(pixel_size_nm)
    d_hi = min(8.0, max(1.0, 0.4 * fov))
    d_lo = min(3.0, d_hi)
    return SimulationParams(
        regime="hrtem", image_size_px=image_size_px, pixel_size_nm=pixel_size_nm,
        voltage_kv=voltage_kv, cs_mm=cs_mm, defocus_nm=defocus_nm,
        dose_e_per_a2=dose_e_per_a2, gas_fraction=gas_fraction,
        gas_info_limit_nm=gas_info_limit_nm, n_particles=n_particles,
        diameter_range_nm=(d_lo, d_hi), edge_fraction=0.0,
    )


def explorer_data(
    *,
    defocus_nm: float | None,
    cs_mm: float,
    dose_e_per_a2: float | None,
    pixel_size_nm: float,
    gas_fraction: float,
    voltage_kv: float = 300.0,
    image_size_px: int = 256,
    seed: int = 0,
    n_particles: int = 3,
    gas_info_limit_nm: float | None = None,
) -> dict:
    """Simulate one HRTEM micrograph and compute everything :func:`plot_explorer` shows.

    Parameters
    ----------
    defocus_nm : float or None
        Defocus in nm (> 0 underfocus); None for Scherzer defocus.
    cs_mm : float
        Spherical aberration in mm (-0.04 to 2).
    dose_e_per_a2 : float or None
        Electron dose in e/Å² (1-10000); None for a noise-free image.
    pixel_size_nm : float
        Pixel size in nm/px, HRTEM range 0.01-0.1.
    gas_fraction : float
        Fraction of electrons scattered by the environmental gas (0-0.3).
    voltage_kv : float, optional
        Accelerating voltage in kV.
    image_size_px : int, optional
        Image side in pixels.
    seed : int, optional
        Seed of the specimen, carbon film and noise; the same seed gives identical data.
    n_particles : int, optional
        Number of Au nanoparticles (0 for a carbon film only).
    gas_info_limit_nm : float or None, optional
        Extra information limit from the gas in nm, or None.

    Returns
    -------
    dict
        ``image`` (counts), ``labels``, ``pixel_size_nm``, ``defocus_nm`` (the value used),
        ``power`` (centred power spectrum), ``k_profile_per_nm`` and ``profile`` (radial
        average), ``k_per_nm`` and ``ctf``/``envelope`` (1-D CTF from 0 to Nyquist),
        ``info_limit_per_nm`` (highest frequency where the envelope is at least e^-2, at most
        Nyquist), ``predicted_zeros_per_nm``
        (:func:`~etem_helpers.simulate.optics.ctf_zeros_per_nm` up to the information limit),
        ``measured_minima_per_nm`` (radial-profile minima between 0.8 1/nm and the
        information limit) and ``params`` (the SimulationParams).

    Raises
    ------
    ValueError
        A parameter outside the range of :class:`~etem_helpers.simulate.SimulationParams`.
    """
    from .simulate import simulate_micrograph

    params = _explorer_params(
        defocus_nm=defocus_nm, cs_mm=cs_mm, dose_e_per_a2=dose_e_per_a2,
        pixel_size_nm=pixel_size_nm, gas_fraction=gas_fraction, voltage_kv=voltage_kv,
        image_size_px=image_size_px, n_particles=n_particles,
        gas_info_limit_nm=gas_info_limit_nm,
    )
    sim = simulate_micrograph(params, seed=seed)
    p = params.pixel_size_nm
    defocus = params.effective_defocus_nm()
    nyquist = 0.5 / p
    power = spectra.power_spectrum(sim.image)
    k_profile, profile = spectra.radial_profile(power, p)
    k = np.linspace(0.0, nyquist, 600)
    curve = optics.ctf_curve(k, voltage_kv=params.voltage_kv, defocus_nm=defocus,
                             cs_mm=params.cs_mm, focal_spread_nm=params.focal_spread_nm,
                             convergence_mrad=params.convergence_mrad)
    envelope = curve["envelope"] * optics.info_limit_envelope(
        k, info_limit_nm=params.gas_info_limit_nm)
    transferred = k[envelope >= _INFO_LIMIT_LEVEL]
    info_limit = float(transferred.max()) if transferred.size else 0.0
    zeros = np.zeros(0)
    if info_limit > 0:
        zeros = optics.ctf_zeros_per_nm(voltage_kv=params.voltage_kv, defocus_nm=defocus,
                                        cs_mm=params.cs_mm, k_max_per_nm=info_limit)
    minima = spectra.find_minima(k_profile, profile, k_min=_K_MIN_PER_NM, k_max=info_limit,
                                 smooth_bins=1.0)
    return {
        "image": sim.image,
        "labels": sim.labels,
        "pixel_size_nm": p,
        "defocus_nm": defocus,
        "power": power,
        "k_profile_per_nm": k_profile,
        "profile": profile,
        "k_per_nm": k,
        "ctf": -curve["sin_chi"] * envelope,
        "envelope": envelope,
        "predicted_zeros_per_nm": zeros,
        "measured_minima_per_nm": minima,
        "info_limit_per_nm": info_limit,
        "params": params,
    }


def plot_explorer(data: dict, *, figsize: tuple[float, float] = (13.0, 4.2)):
    """Draw the three explorer panels from :func:`explorer_data`.

    Parameters
    ----------
    data : dict
        Output of :func:`explorer_data`.
    figsize : tuple of float, optional
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: image (scale bar in nm), power spectrum (log, axes in 1/nm), CTF (1/nm). The
        predicted zeros are the vertical lines with ``gid="predicted_zeros"``, the measured
        minima the markers with ``gid="measured_minima"``.
    """
    from matplotlib.figure import Figure

    params = data["params"]
    p = data["pixel_size_nm"]
    image = data["image"]
    fig = Figure(figsize=figsize, layout="constrained")
    ax_img, ax_ps, ax_ctf = fig.subplots(1, 3, width_ratios=[1, 1, 1.5])

    lo, hi = np.percentile(image, [0.5, 99.5])
    ax_img.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    add_scale_bar(ax_img, p, image.shape)
    ax_img.set_axis_off()
    dose = params.dose_e_per_a2
    dose_text = "no noise" if dose is None else f"{dose:.0f} e/Å²"
    ax_img.set_title(f"Simulated HRTEM, {p:.3g} nm/px\n{dose_text}, gas {params.gas_fraction:.2f}",
                     fontsize="medium")

    nyquist = 0.5 / p
    log_power = np.log10(gaussian_filter(data["power"], 1.0) + 1e-12)
    vmin, vmax = np.percentile(log_power, [5, 99.8])
    ax_ps.imshow(log_power, cmap="magma", vmin=vmin, vmax=vmax,
                 extent=(-nyquist, nyquist, nyquist, -nyquist), interpolation="nearest")
    ax_ps.set(xlabel="$k_x$ (1/nm)", ylabel="$k_y$ (1/nm)")
    ax_ps.set_title("Power spectrum (log): Thon rings", fontsize="medium")

    k = data["k_per_nm"]
    ax_ctf.axhline(0.0, color="0.6", lw=0.8)
    ax_ctf.plot(k, data["ctf"], color="C0", lw=1.2, label=r"CTF $-\sin\chi\cdot E$")
    ax_ctf.plot(k, data["envelope"], color="C0", lw=0.8, ls=":", label="envelope $E$")
    kp, prof = data["k_profile_per_nm"], data["profile"]
    good = np.isfinite(kp) & np.isfinite(prof) & (prof > 0) & (kp >= _K_MIN_PER_NM)
    if good.sum() > 8:
        log_prof = np.log(prof[good])
        trend = gaussian_filter1d(log_prof, max(2.0, good.sum() / 20), mode="nearest")
        detrended = log_prof - trend
        scale = np.nanmax(np.abs(detrended)) or 1.0
        ax_ctf.plot(kp[good], -1.0 + 0.5 * (detrended / scale + 1.0), color="0.45", lw=0.8,
                    label="radial power (detrended, a.u.)")
    zeros = data["predicted_zeros_per_nm"]
    if zeros.size:
        ax_ctf.vlines(zeros, -1.05, 1.05, color="C3", lw=0.8, ls="--",
                      label=r"predicted zeros of $\sin\chi$", gid="predicted_zeros")
    minima = data["measured_minima_per_nm"]
    ax_ctf.plot(minima, np.zeros_like(minima), "v", color="k", ms=6, ls="none",
                label="measured minima", gid="measured_minima")
    if data["info_limit_per_nm"] > 0:
        ax_ctf.axvspan(data["info_limit_per_nm"], nyquist, color="0.9", zorder=0,
                       label="beyond information limit")
    ax_ctf.set(xlim=(0, nyquist), ylim=(-1.08, 1.08), xlabel="spatial frequency k (1/nm)",
               ylabel="transfer")
    ax_ctf.set_title(
        f"CTF at {params.voltage_kv:.0f} kV: $\\Delta f$ = {data['defocus_nm']:.1f} nm, "
        f"$C_s$ = {params.cs_mm:.2f} mm", fontsize="medium")
    ax_ctf.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
                  frameon=False)
    return fig


def explorer_figure(
    *,
    defocus_nm: float | None,
    cs_mm: float,
    dose_e_per_a2: float | None,
    pixel_size_nm: float,
    gas_fraction: float,
    voltage_kv: float = 300.0,
    image_size_px: int = 256,
    seed: int = 0,
):
    """Simulate an HRTEM micrograph and show image, power spectrum and CTF side by side.

    Parameters
    ----------
    defocus_nm : float or None
        Defocus in nm (> 0 underfocus, Kirkland convention); None for Scherzer defocus.
    cs_mm : float
        Spherical aberration in mm (-0.04 to 2; small negative values: corrected microscope).
    dose_e_per_a2 : float or None
        Electron dose in e/Å² (1-10000), or None for a noise-free image.
    pixel_size_nm : float
        Pixel size in nm/px (HRTEM range 0.01-0.1).
    gas_fraction : float
        Fraction of electrons scattered by the environmental gas (0-0.3).
    voltage_kv : float, optional
        Accelerating voltage in kV.
    image_size_px : int, optional
        Image side in pixels (256 redraws in well under a second on a laptop CPU).
    seed : int, optional
        Seed of the simulation; the same arguments give the same figure data.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes, see :func:`plot_explorer`.

    Raises
    ------
    ValueError
        A value outside the ranges of :class:`~etem_helpers.simulate.SimulationParams`.
    """
    data = explorer_data(defocus_nm=defocus_nm, cs_mm=cs_mm, dose_e_per_a2=dose_e_per_a2,
                         pixel_size_nm=pixel_size_nm, gas_fraction=gas_fraction,
                         voltage_kv=voltage_kv, image_size_px=image_size_px, seed=seed)
    return plot_explorer(data)


def explorer_controls(*, voltage_kv: float = 300.0) -> dict:
    """The sliders of :func:`ctf_explorer`, keyed by :func:`explorer_figure` argument.

    Parameters
    ----------
    voltage_kv : float, optional
        Accelerating voltage in kV; sets the initial defocus to Scherzer for C_s = 1.2 mm.

    Returns
    -------
    dict
        ``defocus_nm`` (-300 to 300 nm), ``cs_mm`` (-0.04 to 2 mm), ``dose_e_per_a2``
        (log slider, 10-10000 e/Å²), ``pixel_size_nm`` (0.02-0.1 nm/px) and ``gas_fraction``
        (0-0.3); all ``ipywidgets`` sliders with ``continuous_update=False``.
    """
    import ipywidgets as widgets

    style = {"description_width": "150px"}
    layout = widgets.Layout(width="480px")
    common = {"continuous_update": False, "style": style, "layout": layout}
    scherzer = optics.scherzer_defocus_nm(1.2, voltage_kv)
    return {
        "defocus_nm": widgets.FloatSlider(value=round(scherzer, 1), min=-300.0, max=300.0,
                                          step=1.0, description="defocus Δf (nm)", **common),
        "cs_mm": widgets.FloatSlider(value=1.2, min=-0.04, max=2.0, step=0.01,
                                     description="C_s (mm)", **common),
        "dose_e_per_a2": widgets.FloatLogSlider(value=1000.0, base=10, min=1.0, max=4.0,
                                                step=0.1, description="dose (e/Å²)",
                                                readout_format=".0f", **common),
        "pixel_size_nm": widgets.FloatSlider(value=0.05, min=0.02, max=0.1, step=0.005,
                                             description="pixel size (nm/px)",
                                             readout_format=".3f", **common),
        "gas_fraction": widgets.FloatSlider(value=0.0, min=0.0, max=0.3, step=0.01,
                                            description="gas fraction", **common),
    }


def ctf_explorer(*, image_size_px: int = 256, seed: int = 0, voltage_kv: float = 300.0):
    """Interactive explorer: sliders for defocus, C_s, dose, pixel size and gas fraction.

    Each change redraws :func:`explorer_figure` (one 256² simulation and three panels,
    well under a second on a laptop CPU). Sliders update on release
    (``continuous_update=False``).

    Parameters
    ----------
    image_size_px : int, optional
        Side of the simulated image in pixels.
    seed : int, optional
        Simulation seed (kept fixed, so only the optics change between redraws).
    voltage_kv : float, optional
        Accelerating voltage in kV.

    Returns
    -------
    ipywidgets.VBox
        ``children[0]``: the sliders (a VBox, in the order of :func:`explorer_controls`);
        ``children[1]``: the ``ipywidgets.Output`` holding the figure.
    """
    import ipywidgets as widgets
    from IPython.display import Image, display

    controls = explorer_controls(voltage_kv=voltage_kv)

    def draw(**values):
        try:
            fig = explorer_figure(voltage_kv=voltage_kv, image_size_px=image_size_px,
                                  seed=seed, **values)
        except ValueError as error:  # e.g. a combination outside SimulationParams
            print(f"Cannot simulate these settings: {error}")
            return
        display(Image(data=figure_png(fig, dpi=80)))

    output = widgets.interactive_output(draw, controls)
    return widgets.VBox([widgets.VBox(list(controls.values())), output])
