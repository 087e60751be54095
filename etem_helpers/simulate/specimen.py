"""The projected specimen: particle geometry, placement, projected phase and true labels.

World coordinates are in nm with the origin at the centre of pixel (0, 0); ``y`` runs down
the rows and ``x`` along the columns. Output pixel ``(i, j)`` sits at ``(i p, j p)`` and
render pixel ``(i, j)`` at ``(i p_r, j p_r)`` with ``p_r = p / oversample``; this is the
sampling that :func:`etem_helpers.simulate.optics.fourier_crop` preserves, so the true
label map (evaluated on the output grid) lines up with the rendered image.

Physics (``docs/physics.md``):

* **Crystals on the [1-10] zone** (HRTEM regime): fcc columns with the (111) planes
  edge-on. Rows at ``y_k = k h`` with ``h = a / sqrt(3)``; columns at
  ``x = (j + s_k / 3) P`` with ``P = a sqrt(6) / 4``. Stacking offsets ``s_k``: perfect
  ``k mod 3``; twin at layer m: ``(2m - k) mod 3`` for ``k > m``; intrinsic stacking fault
  at layer m: ``(k + [k > m]) mod 3``. Each column holds ``t(x, y) / (a / sqrt(2))`` atoms
  and is splatted bilinearly, then convolved with a Gaussian atom.
* **Phase per atom** 0.33 rad A^2 for Au at 300 kV (abTEM, Lobato potential), scaled with
  the interaction constant for other voltages. The same value is used for Pt, Pd and Ag:
  we have no measured source for their per-atom phase (Pd and Ag are lighter, so their
  contrast is somewhat overestimated; documented limitation).
* **Low magnification and off-zone crystals**: phase ``sigma V0 t`` with the mean inner
  potential ``V0`` derived from the same per-atom phase (Au: 0.33 rad A^2 x 4 / a^3 /
  sigma_300 = 29.8 V, within the 21-30 V range reported for gold), never splatted columns.
  Off-zone HRTEM particles may carry one cosine fringe set (d111 or d200) or none.
* **Carbon nanotubes**: graphite walls (0.34 nm apart, 0.38 atoms/A^2 per layer, 0.078 rad
  A^2 per C atom); in HRTEM each wall is a thin cylindrical shell so the projected walls
  show the 0.34 nm fringes; in low magnification a uniform shell of graphite density.
* **Aggregates** (polymer): a union of random ellipsoids at an effective carbon density of
  0.05 atoms/A^3, rendered as Poisson-distributed atoms (amorphous speckle), low contrast.

The exit wave, optics and detector are applied in :mod:`etem_helpers.simulate.micrograph`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.fft
from scipy import ndimage

from .optics import interaction_constant
from .params import LATTICE_CONSTANT_NM, SimulationParams

__all__ = [
    "Particle",
    "KIND_OF_SHAPE",
    "PHASE_PER_ATOM_RAD_A2",
    "COLUMN_SATURATION_ATOMS",
    "stacking_offsets",
    "fcc_columns",
    "mean_inner_potential_v",
    "particle_thickness",
    "particle_bound_radius_nm",
    "place_particles",
    "render_phase",
    "render_labels",
    "render_diffraction_attenuation",
    "particle_attributes",
]

#: Phase per Au atom at 300 kV in rad A^2 (physics.md section 2).
PHASE_PER_ATOM_RAD_A2 = 0.33
#: Phase per carbon atom at 300 kV in rad A^2.
_PHASE_PER_C_ATOM_RAD_A2 = 0.078
_SIGMA_300 = 6.53e-4  # rad / (V A), reference of the per-atom phases above
_GRAPHITE_SPACING_NM = 0.34
_GRAPHENE_ATOMS_PER_A2 = 0.382
_GRAPHITE_ATOMS_PER_A3 = 0.114
_POLYMER_ATOMS_PER_A3 = 0.05
_WALL_HALF_WIDTH_NM = 0.06
#: Atoms per column at which the lattice (column) contrast saturates (channelling heuristic).
COLUMN_SATURATION_ATOMS = 5.0
_MAX_NANOTUBES = 4

#: Contract ``kind`` of each rendered shape.
KIND_OF_SHAPE: dict[str, str] = {
    "round": "nanoparticle",
    "faceted": "nanoparticle",
    "decahedral": "nanoparticle",
    "rod": "rod",
    "nanotube": "nanotube",
    "aggregate": "aggregate",
}
_CRYSTALLINE = ("round", "faceted", "decahedral", "rod")
_FAULTS = ("none", "twin", "stacking_fault", "multiple_twin")


@dataclass(frozen=True)
class Particle:
    """Geometry and structure of one simulated object (lengths in nm, angles in degrees).

    Parameters
    ----------
    shape : str
        One of ``round``, ``faceted``, ``decahedral``, ``rod``, ``nanotube``, ``aggregate``.
    center_y_nm, center_x_nm : float
        Centre in world coordinates (nm; pixel (0, 0) at the origin).
    radius_nm : float
        round: semi-axis along ``angle_deg``; faceted / decahedral: circumradius; rod: radius
        of the capsule; nanotube: outer radius; aggregate: overall radius.
    radius2_nm : float
        round: second semi-axis; faceted: circumradius across (elongation); nanotube: inner
        radius (hollow core); otherwise unused.
    thickness_nm : float
        Maximum projected thickness (round: 2 c of the ellipsoid; faceted / decahedral:
        plateau thickness; rod: 2 radius).
    length_nm : float
        rod: length of the cylindrical part between the cap centres; nanotube: length.
    angle_deg : float
        In-plane orientation of the shape (its ``radius_nm`` axis / rod axis / first vertex).
    n_facets : int
        faceted: number of facets (4, 5, 6 or 8); decahedral: 5.
    taper_nm : float
        faceted / decahedral: width over which the thickness ramps up from the edge.
    material : str
        "Au", "Pt", "Pd", "Ag" for crystals; "C" for nanotubes, "polymer" for aggregates.
    on_zone : bool
        Crystal on the [1-10] zone axis (atomic columns rendered in HRTEM).
    lattice_angle_deg : float
        Direction of the (111) rows (the edge-on fault planes) in the image.
    lattice_origin_y_nm, lattice_origin_x_nm : float
        World position of the column (k = 0, j = 0).
    fault : str
        "none", "twin", "stacking_fault" (intrinsic) or "multiple_twin" (decahedra).
    fault_layer : int
        Layer index m of the twin plane / stacking fault.
    fringe_period_nm, fringe_angle_deg, fringe_amplitude : float
        Off-zone HRTEM particles: one cosine fringe set (period 0 = none).
    blobs : tuple
        aggregate: ``((dy_nm, dx_nm, ry_nm, rx_nm, angle_deg), ...)`` ellipsoids.
    outline : tuple
        round: ``((order, relative_amplitude, phase_rad), ...)``, a Fourier perturbation of
        the outline, r(theta) = r_ellipse(theta) [1 + sum a_m cos(m theta + phi_m)]
        (empty = an ellipse).
    edge_exponent : float
        round: thickness ``T q^edge_exponent`` with ``q = 1 - (r / R(theta))^2``; 0.5 is an
        ellipsoid, larger values give softer edges with the same footprint.
    """

    shape: str
    center_y_nm: float
    center_x_nm: float
    radius_nm: float
    radius2_nm: float = 0.0
    thickness_nm: float = 0.0
    length_nm: float = 0.0
    angle_deg: float = 0.0
    n_facets: int = 0
    taper_nm: float = 0.0
    material: str = "Au"
    on_zone: bool = False
    lattice_angle_deg: float = 0.0
    lattice_origin_y_nm: float = 0.0
    lattice_origin_x_nm: float = 0.0
    fault: str = "none"
    fault_layer: int = 0
    fringe_period_nm: float = 0.0
    fringe_angle_deg: float = 0.0
    fringe_amplitude: float = 0.0
    blobs: tuple = ()
    outline: tuple = ()
    edge_exponent: float = 0.5

    @property
    def kind(self) -> str:
        """Contract kind: nanoparticle, rod, nanotube or aggregate."""
        return KIND_OF_SHAPE[self.shape]

    @property
    def crystalline(self) -> bool:
        """True for metal crystals (round, faceted, decahedral, rod)."""
        return self.shape in _CRYSTALLINE

    @property
    def has_fault(self) -> bool:
        """The structure contains a twin or stacking fault."""
        return self.fault != "none"


# --------------------------------------------------------------------------------------
# Crystal lattice
# --------------------------------------------------------------------------------------
def stacking_offsets(k, *, fault: str = "none", fault_layer: int = 0) -> np.ndarray:
    """Stacking offset s_k (0, 1 or 2, in units of P / 3) of the (111) layers.

    Parameters
    ----------
    k : array_like of int
        Layer indices (rows of columns, y_k = k h).
    fault : {"none", "twin", "stacking_fault", "multiple_twin"}
        "twin": mirror at layer m, ``s_k = (2m - k) mod 3`` for k > m; "stacking_fault":
        intrinsic fault above layer m, ``s_k = (k + 1) mod 3`` for k > m. "none" and
        "multiple_twin" (each decahedral wedge is a perfect crystal) give ``k mod 3``.
    fault_layer : int
        Layer index m.

    Returns
    -------
    numpy.ndarray of int
    """
    k = np.asarray(k, dtype=np.int64)
    if fault not in _FAULTS:
        raise ValueError(f"fault={fault!r} is not one of {_FAULTS}.")
    m = int(fault_layer)
    if fault == "twin":
        return np.where(k > m, (2 * m - k) % 3, k % 3)
    if fault == "stacking_fault":
        return (k + (k > m)) % 3
    return k % 3


def fcc_columns(
    *,
    lattice_constant_nm: float,
    origin_yx_nm: tuple[float, float],
    angle_deg: float,
    bbox_nm: tuple[float, float, float, float],
    fault: str = "none",
    fault_layer: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of fcc [1-10] atomic columns covering a rectangle.

    Parameters
    ----------
    lattice_constant_nm : float
        fcc lattice constant a in nm.
    origin_yx_nm : tuple of float
        World position (y, x) in nm of column (k = 0, j = 0).
    angle_deg : float
        Direction of the (111) rows in degrees (from +x towards +y).
    bbox_nm : tuple of float
        (y_min, y_max, x_min, x_max) in nm; all columns inside are returned (and a margin).
    fault, fault_layer
        See :func:`stacking_offsets`.

    Returns
    -------
    y_nm, x_nm : numpy.ndarray
        World coordinates of the columns (nm).
    k : numpy.ndarray of int
        Layer index of each column.
    """
    a = float(lattice_constant_nm)
    h = a / math.sqrt(3.0)
    period = a * math.sqrt(6.0) / 4.0
    ang = math.radians(angle_deg)
    c, s = math.cos(ang), math.sin(ang)
    oy, ox = origin_yx_nm
    y0, y1, x0, x1 = bbox_nm
    cy = np.array([y0, y0, y1, y1]) - oy
    cx = np.array([x0, x1, x0, x1]) - ox
    u = cx * c + cy * s  # along rows
    v = -cx * s + cy * c  # along the layer normal
    k = np.arange(math.floor(v.min() / h) - 1, math.ceil(v.max() / h) + 2)
    j = np.arange(math.floor(u.min() / period) - 2, math.ceil(u.max() / period) + 2)
    kk, jj = np.meshgrid(k, j, indexing="ij")
    sk = stacking_offsets(kk, fault=fault, fault_layer=fault_layer)
    ul = (jj + sk / 3.0) * period
    vl = kk * h
    x = ox + ul * c - vl * s
    y = oy + ul * s + vl * c
    inside = (y >= y0) & (y <= y1) & (x >= x0) & (x <= x1)
    return y[inside], x[inside], kk[inside]


def mean_inner_potential_v(material: str) -> float:
    """Mean inner potential in V implied by the per-atom phase (see module notes).

    Parameters
    ----------
    material : str
        "Au", "Pt", "Pd", "Ag", "C" (graphite) or "polymer".

    Returns
    -------
    float
        V0 in volts (Au 29.8 V).
    """
    if material in LATTICE_CONSTANT_NM:
        a_angstrom = LATTICE_CONSTANT_NM[material] * 10.0
        density = 4.0 / a_angstrom**3
        return PHASE_PER_ATOM_RAD_A2 * density / _SIGMA_300
    if material == "C":
        return _PHASE_PER_C_ATOM_RAD_A2 * _GRAPHITE_ATOMS_PER_A3 / _SIGMA_300
    if material == "polymer":
        return _PHASE_PER_C_ATOM_RAD_A2 * _POLYMER_ATOMS_PER_A3 / _SIGMA_300
    raise ValueError(f"unknown material {material!r}.")


# --------------------------------------------------------------------------------------
# Thickness maps
# --------------------------------------------------------------------------------------
def _local(p: Particle, y, x):
    ang = math.radians(p.angle_deg)
    dy = np.asarray(y, dtype=np.float64) - p.center_y_nm
    dx = np.asarray(x, dtype=np.float64) - p.center_x_nm
    c, s = math.cos(ang), math.sin(ang)
    return dx * c + dy * s, -dx * s + dy * c


def _polygon_edge_distance(u, v, *, n: int, radius_nm: float):
    """Signed distance (nm, > 0 inside) to the edges of a regular n-gon with a vertex on +u."""
    apothem = radius_nm * math.cos(math.pi / n)
    dist = None
    for i in range(n):
        phi = 2.0 * math.pi * (i + 0.5) / n
        proj = u * math.cos(phi) + v * math.sin(phi)
        dist = proj if dist is None else np.maximum(dist, proj)
    return apothem - dist


def _shell_projection(v, r_out, r_in):
    """Projected path length (nm) through a cylindrical shell r_in <= r <= r_out at offset v."""
    v2 = v * v
    outer = np.sqrt(np.maximum(r_out * r_out - v2, 0.0))
    inner = np.sqrt(np.maximum(r_in * r_in - v2, 0.0)) if r_in > 0 else 0.0
    return 2.0 * (outer - inner)


def particle_thickness(p: Particle, y_nm, x_nm) -> np.ndarray:
    """Projected thickness t(x, y) of a particle in nm (0 outside it).

    Parameters
    ----------
    p : Particle
        The object.
    y_nm, x_nm : array_like
        World coordinates in nm (broadcastable).

    Returns
    -------
    numpy.ndarray
        Thickness in nm (float64); the particle's footprint is ``t > 0``.
    """
    u, v = _local(p, y_nm, x_nm)
    if p.shape == "round":
        un, vn = u / p.radius_nm, v / p.radius2_nm
        rho2 = un * un + vn * vn
        if p.outline:
            theta = np.arctan2(vn, un)
            scale = 1.0
            for order, amplitude, phase in p.outline:
                scale = scale + amplitude * np.cos(order * theta + phase)
            rho2 = rho2 / (scale * scale)
        q = np.maximum(1.0 - rho2, 0.0)
        if p.edge_exponent == 0.5:
            return p.thickness_nm * np.sqrt(q)
        return p.thickness_nm * q**p.edge_exponent
    if p.shape in ("faceted", "decahedral"):
        stretch = p.radius_nm / p.radius2_nm if p.radius2_nm > 0 else 1.0
        d = _polygon_edge_distance(u, v * stretch, n=p.n_facets, radius_nm=p.radius_nm)
        return p.thickness_nm * np.clip(d / max(p.taper_nm, 1e-6), 0.0, 1.0)
    if p.shape == "rod":
        du = np.maximum(np.abs(u) - 0.5 * p.length_nm, 0.0)
        q = p.radius_nm**2 - du * du - v * v
        return 2.0 * np.sqrt(np.maximum(q, 0.0))
    if p.shape == "nanotube":
        t = _shell_projection(v, p.radius_nm, p.radius2_nm)
        return np.where(np.abs(u) <= 0.5 * p.length_nm, t, 0.0)
    if p.shape == "aggregate":
        t = np.zeros(np.broadcast(u, v).shape)
        for dy, dx, ry, rx, ang in p.blobs:
            a = math.radians(ang)
            bu = (u - dx) * math.cos(a) + (v - dy) * math.sin(a)
            bv = -(u - dx) * math.sin(a) + (v - dy) * math.cos(a)
            q = 1.0 - (bu / rx) ** 2 - (bv / ry) ** 2
            t = np.maximum(t, 2.0 * min(rx, ry) * np.sqrt(np.maximum(q, 0.0)))
        return t
    raise ValueError(f"unknown particle shape {p.shape!r}.")


def particle_bound_radius_nm(p: Particle) -> float:
    """Radius (nm) of a circle around the centre that contains the whole particle."""
    if p.shape == "round":
        bulge = 1.0 + sum(abs(a) for _, a, _ in p.outline)
        return max(p.radius_nm, p.radius2_nm) * bulge
    if p.shape in ("faceted", "decahedral"):
        return max(p.radius_nm, p.radius2_nm)
    if p.shape == "rod":
        return 0.5 * p.length_nm + p.radius_nm
    if p.shape == "nanotube":
        return math.hypot(0.5 * p.length_nm, p.radius_nm)
    if p.shape == "aggregate":
        return max(
            (math.hypot(dy, dx) + max(ry, rx) for dy, dx, ry, rx, _ in p.blobs), default=0.0
        )
    raise ValueError(f"unknown particle shape {p.shape!r}.")


def _bbox_px(p: Particle, n: int, pixel_nm: float):
    """Pixel index ranges (i0, i1, j0, j1) of a grid of n x n pixels covering the particle."""
    r = particle_bound_radius_nm(p) + pixel_nm
    if p.shape in ("rod", "nanotube"):
        # tighter box for long thin objects
        ang = math.radians(p.angle_deg)
        half = 0.5 * p.length_nm + p.radius_nm
        ry = abs(half * math.sin(ang)) + p.radius_nm + pixel_nm
        rx = abs(half * math.cos(ang)) + p.radius_nm + pixel_nm
    else:
        ry = rx = r
    i0 = max(int(math.floor((p.center_y_nm - ry) / pixel_nm)), 0)
    i1 = min(int(math.ceil((p.center_y_nm + ry) / pixel_nm)) + 1, n)
    j0 = max(int(math.floor((p.center_x_nm - rx) / pixel_nm)), 0)
    j1 = min(int(math.ceil((p.center_x_nm + rx) / pixel_nm)) + 1, n)
    return i0, i1, j0, j1


def _footprint(p: Particle, n: int, pixel_nm: float):
    """Boolean footprint t > 0 on an n x n grid, as (i0, j0, mask); mask may be empty."""
    i0, i1, j0, j1 = _bbox_px(p, n, pixel_nm)
    if i1 <= i0 or j1 <= j0:
        return i0, j0, np.zeros((0, 0), dtype=bool)
    y = (np.arange(i0, i1) * pixel_nm)[:, None]
    x = (np.arange(j0, j1) * pixel_nm)[None, :]
    return i0, j0, particle_thickness(p, y, x) > 0


def _boxes_overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


# --------------------------------------------------------------------------------------
# Random particles and placement
# --------------------------------------------------------------------------------------
def _random_particle(rng: np.random.Generator, params: SimulationParams, shape: str) -> Particle:
    """A particle of the given shape centred at the origin (placement comes later)."""
    d_lo, d_hi = params.diameter_range_nm
    field = params.field_of_view_nm
    if params.diameter_distribution == "uniform":
        diameter = float(rng.uniform(d_lo, d_hi))
    else:
        diameter = float(np.exp(rng.uniform(np.log(d_lo), np.log(d_hi))))
    radius = 0.5 * diameter
    angle = float(rng.uniform(0.0, 360.0))
    kw: dict = {"shape": shape, "center_y_nm": 0.0, "center_x_nm": 0.0, "angle_deg": angle}
    if shape == "round":
        b = radius * float(rng.uniform(0.8, 1.0))
        kw.update(radius_nm=radius, radius2_nm=b,
                  thickness_nm=2.0 * 0.5 * (radius + b) * float(rng.uniform(0.8, 1.0)),
                  edge_exponent=params.edge_exponent)
        if params.outline_roughness > 0:
            kw["outline"] = _random_outline(rng, params.outline_roughness)
    elif shape == "faceted":
        n = int(rng.choice([4, 5, 6, 8]))
        r2 = radius * float(rng.uniform(0.75, 1.0))
        apothem = min(radius, r2) * math.cos(math.pi / n)
        kw.update(radius_nm=radius, radius2_nm=r2, n_facets=n,
                  thickness_nm=diameter * float(rng.uniform(0.6, 0.9)),
                  taper_nm=apothem * float(rng.uniform(0.2, 0.5)))
    elif shape == "decahedral":
        apothem = radius * math.cos(math.pi / 5)
        kw.update(radius_nm=radius, radius2_nm=radius, n_facets=5,
                  thickness_nm=diameter * float(rng.uniform(0.5, 0.8)),
                  taper_nm=apothem * float(rng.uniform(0.5, 1.0)))
    elif shape == "rod":
        length = min(diameter * float(rng.uniform(1.0, 5.0)), 0.6 * field)
        kw.update(radius_nm=radius, thickness_nm=diameter, length_nm=length)
    elif shape == "nanotube":
        inner = radius * float(rng.uniform(0.3, 0.6))
        length = field * float(rng.uniform(0.4, 1.5))
        kw.update(radius_nm=radius, radius2_nm=inner, thickness_nm=2 * radius,
                  length_nm=length, material="C")
    elif shape == "aggregate":
        n_blobs = int(rng.integers(3, 9))
        blobs = []
        for _ in range(n_blobs):
            rr = radius * float(rng.uniform(0.25, 0.5))
            dist = (radius - rr) * math.sqrt(float(rng.uniform(0.0, 1.0)))
            phi = float(rng.uniform(0.0, 2.0 * math.pi))
            blobs.append((dist * math.sin(phi), dist * math.cos(phi), rr,
                          rr * float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.0, 180.0))))
        kw.update(radius_nm=radius, thickness_nm=diameter, blobs=tuple(blobs),
                  material="polymer")
    else:
        raise ValueError(f"unknown particle shape {shape!r}.")

    if shape in _CRYSTALLINE:
        kw["material"] = params.material
        on_zone = bool(rng.random() < params.on_zone_probability)
        a = LATTICE_CONSTANT_NM[params.material]
        h = a / math.sqrt(3.0)
        if shape == "decahedral":
            fault = "multiple_twin"
            lattice_angle = angle
            origin = (0.0, 0.0)
        else:
            fault = "none"
            if rng.random() < params.fault_probability:
                fault = "twin" if rng.random() < 0.5 else "stacking_fault"
            if shape == "rod" and rng.random() < 0.5:
                lattice_angle = angle  # (111) planes along the rod axis
            else:
                lattice_angle = float(rng.uniform(0.0, 360.0))
            origin = (float(rng.uniform(0.0, h)), float(rng.uniform(0.0, a)))
        # fault plane within the central 60 % of the smallest half-width
        half_width = min(kw.get("radius2_nm") or radius, radius)
        fault_layer = int(round(float(rng.uniform(-0.3, 0.3)) * half_width / h))
        kw.update(on_zone=on_zone, lattice_angle_deg=lattice_angle, fault=fault,
                  fault_layer=fault_layer, lattice_origin_y_nm=origin[0],
                  lattice_origin_x_nm=origin[1])
        if not on_zone and params.regime == "hrtem" and rng.random() < 0.5:
            d = h if rng.random() < 0.7 else a / 2.0  # d111 or d200
            kw.update(fringe_period_nm=d, fringe_angle_deg=float(rng.uniform(0.0, 180.0)),
                      fringe_amplitude=float(rng.uniform(0.05, 0.25)))
    return Particle(**kw)


def _random_outline(rng: np.random.Generator, roughness: float) -> tuple:
    """Fourier outline perturbation: orders 2-5, amplitudes ~ 1/m, sum of |a_m| = roughness."""
    orders = np.arange(2, 6)
    weights = rng.uniform(0.0, 1.0, size=orders.size) / orders
    amplitudes = roughness * float(rng.uniform(0.3, 1.0)) * weights / weights.sum()
    phases = rng.uniform(0.0, 2.0 * math.pi, size=orders.size)
    return tuple((int(m), float(a), float(f))
                 for m, a, f in zip(orders, amplitudes, phases, strict=True))


def _draw_shapes(rng: np.random.Generator, params: SimulationParams) -> list[str]:
    """Shape of each object: uniform over ``kinds``, or ``round_fraction`` round."""
    kinds = np.array(params.kinds)
    others = [k for k in params.kinds if k != "round"]
    if params.round_fraction is None or "round" not in params.kinds or not others:
        return [str(k) for k in rng.choice(kinds, size=params.n_particles)]
    is_round = rng.random(params.n_particles) < params.round_fraction
    rest = rng.choice(np.array(others), size=params.n_particles)
    return [("round" if r else str(k)) for r, k in zip(is_round, rest, strict=True)]


def _moved(p: Particle, cy: float, cx: float) -> Particle:
    dy, dx = cy - p.center_y_nm, cx - p.center_x_nm
    return replace(p, center_y_nm=cy, center_x_nm=cx,
                   lattice_origin_y_nm=p.lattice_origin_y_nm + dy,
                   lattice_origin_x_nm=p.lattice_origin_x_nm + dx)


def _contact_distance(q: Particle, p: Particle, direction: float) -> float:
    """Centre distance (nm) at which p, moved along `direction` from q, just touches q."""
    r_p = particle_bound_radius_nm(p)
    # sample points of p's footprint relative to its centre
    step = max(r_p / 24.0, 1e-3)
    g = np.arange(-r_p, r_p + step, step)
    yy, xx = np.meshgrid(g, g, indexing="ij")
    inside = particle_thickness(_moved(p, 0.0, 0.0), yy, xx) > 0
    py, px = yy[inside], xx[inside]
    if py.size == 0:
        return particle_bound_radius_nm(q) + r_p
    cy, cx = math.sin(direction), math.cos(direction)
    lo, hi = 0.0, particle_bound_radius_nm(q) + r_p + step
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        hit = particle_thickness(q, q.center_y_nm + mid * cy + py, q.center_x_nm + mid * cx + px)
        if np.any(hit > 0):
            lo = mid
        else:
            hi = mid
    return hi


def place_particles(params: SimulationParams, rng: np.random.Generator) -> list[Particle]:
    """Draw and place ``params.n_particles`` objects in the field of view.

    Parameters
    ----------
    params : SimulationParams
        Shapes (``kinds``), sizes, material, fault / zone-axis probabilities,
        ``touching_fraction`` and ``edge_fraction``.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of Particle
        In occlusion order (later particles are on top). Nanotubes are placed first.

    Notes
    -----
    Non-touching objects keep a gap of at least two output pixels from every other object
    (checked on the output-grid footprints). A ``touching_fraction`` of the objects is put in
    contact with an already placed neighbour: the contact distance along a random direction
    is found by bisection on the analytic shapes and reduced by 0-3 % so that the two masks
    meet; the small overlap is resolved by the occlusion order. An ``edge_fraction`` of the
    objects may be cut by the image edge (nanotubes always may). At most four nanotubes are
    drawn per image (further draws take another of ``kinds``). Objects that do not fit
    after 60 attempts are dropped, so fewer than ``n_particles`` may be returned.

    Dense assemblies (``params`` a :class:`~etem_helpers.simulate.dense.DenseSimulationParams`)
    are placed by :func:`~etem_helpers.simulate.dense.place_dense_particles` instead.
    """
    if params.packing == "dense":
        from .dense import place_dense_particles

        return place_dense_particles(params, rng)
    n = params.image_size_px
    px = params.pixel_size_nm
    field = params.field_of_view_nm
    shapes = _draw_shapes(rng, params)
    others = [k for k in params.kinds if k != "nanotube"]
    n_tubes = 0
    for i, shape in enumerate(shapes):  # at most _MAX_NANOTUBES long tubes per image
        if shape == "nanotube":
            n_tubes += 1
            if n_tubes > _MAX_NANOTUBES and others:
                shapes[i] = str(rng.choice(np.array(others)))
    shapes.sort(key=lambda s: s != "nanotube")  # tubes first: long objects need room
    occupancy = np.zeros((n, n), dtype=np.int32)
    placed: list[Particle] = []
    gap = 2
    for shape in shapes:
        proto = _random_particle(rng, params, shape)
        r_b = particle_bound_radius_nm(proto)
        touching = (
            bool(placed) and shape != "nanotube" and rng.random() < params.touching_fraction
        )
        may_cut = shape == "nanotube" or rng.random() < params.edge_fraction
        for _attempt in range(60):
            partner = 0
            if touching:
                q_index = int(rng.integers(len(placed)))
                q = placed[q_index]
                direction = float(rng.uniform(0.0, 2.0 * math.pi))
                dist = _contact_distance(q, proto, direction) * float(rng.uniform(0.97, 1.0))
                cy = q.center_y_nm + dist * math.sin(direction)
                cx = q.center_x_nm + dist * math.cos(direction)
                partner = q_index + 1
                if not (0.0 <= cy <= field - px and 0.0 <= cx <= field - px):
                    continue
            elif may_cut:
                cy, cx = (float(v) for v in rng.uniform(0.0, field - px, size=2))
            else:
                lo, hi = r_b + gap * px, field - r_b - (gap + 1) * px
                if hi <= lo:
                    lo, hi = 0.0, field - px
                cy, cx = (float(v) for v in rng.uniform(lo, hi, size=2))
            ci, cj = int(round(cy / px)), int(round(cx / px))
            if 0 <= ci < n and 0 <= cj < n and occupancy[ci, cj] not in (0, partner):
                continue  # cheap early rejection: the centre lies next to another object
            cand = _moved(proto, cy, cx)
            i0, j0, mask = _footprint(cand, n, px)
            if not mask.any():
                continue
            hits = occupancy[i0:i0 + mask.shape[0], j0:j0 + mask.shape[1]][mask]
            if np.any((hits != 0) & (hits != partner)):
                continue
            if not may_cut and not touching:
                if (i0 == 0 or j0 == 0 or i0 + mask.shape[0] >= n
                        or j0 + mask.shape[1] >= n):
                    continue
            # occupancy holds the footprints grown by the gap (ids; first writer wins)
            grown = ndimage.binary_dilation(np.pad(mask, gap), iterations=gap)
            gi0, gj0 = i0 - gap, j0 - gap
            ci0, cj0 = max(gi0, 0), max(gj0, 0)
            ci1 = min(gi0 + grown.shape[0], n)
            cj1 = min(gj0 + grown.shape[1], n)
            sub = grown[ci0 - gi0:ci1 - gi0, cj0 - gj0:cj1 - gj0]
            region = occupancy[ci0:ci1, cj0:cj1]
            region[sub & (region == 0)] = len(placed) + 1
            placed.append(cand)
            break
    return placed


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
def _occluded_points(later: list[tuple], y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mask of points (world nm) covered by any later particle; later = [(particle, box_nm)]."""
    hidden = np.zeros(y.shape, dtype=bool)
    for q, (y0, y1, x0, x1) in later:
        near = (y >= y0) & (y <= y1) & (x >= x0) & (x <= x1)
        if near.any():
            hidden[near] |= particle_thickness(q, y[near], x[near]) > 0
    return hidden


def _occluded_grid(later: list[tuple], box: tuple, pixel_nm: float) -> np.ndarray:
    """Mask of the pixel box (i0, i1, j0, j1) covered by any later particle."""
    i0, i1, j0, j1 = box
    hidden = np.zeros((i1 - i0, j1 - j0), dtype=bool)
    for q, qbox in later:
        a0, a1 = max(i0, qbox[0]), min(i1, qbox[1])
        b0, b1 = max(j0, qbox[2]), min(j1, qbox[3])
        if a1 <= a0 or b1 <= b0:
            continue
        yy = (np.arange(a0, a1) * pixel_nm)[:, None]
        xx = (np.arange(b0, b1) * pixel_nm)[None, :]
        hidden[a0 - i0:a1 - i0, b0 - j0:b1 - j0] |= particle_thickness(q, yy, xx) > 0
    return hidden


def _splat(acc: np.ndarray, y_px, x_px, weight) -> None:
    """Bilinear splat of point weights into acc (in place); indices wrap periodically."""
    n_y, n_x = acc.shape
    i0 = np.floor(y_px).astype(np.int64)
    j0 = np.floor(x_px).astype(np.int64)
    fy = y_px - i0
    fx = x_px - j0
    indices, weights = [], []
    for di, wy in ((0, 1.0 - fy), (1, fy)):
        for dj, wx in ((0, 1.0 - fx), (1, fx)):
            indices.append(((i0 + di) % n_y) * n_x + (j0 + dj) % n_x)
            weights.append(weight * wy * wx)
    flat = np.bincount(np.concatenate(indices), weights=np.concatenate(weights),
                       minlength=acc.size)
    acc += flat.reshape(acc.shape)


def _saturated_atoms(n_atoms):
    """Channelling heuristic: the lattice contrast of a column saturates with its atom count.

    ``n_eff = n_c tanh(n / n_c)`` with ``n_c`` = :data:`COLUMN_SATURATION_ATOMS`. A linear
    sum of 15-30 heavy atoms under a 0.035 nm Gaussian gives a peak column phase of 6-13 rad,
    which the projection approximation turns into ring-shaped (phase-wrapped) columns never
    seen in experiments (dynamical scattering keeps the column exit-wave phase bounded). The
    phase removed here is added back as a smooth ``sigma V0 (t - t_eff)`` field, so the mean
    phase of a crystal still equals ``sigma V0 t``.
    """
    n_atoms = np.asarray(n_atoms, dtype=np.float64)
    return COLUMN_SATURATION_ATOMS * np.tanh(n_atoms / COLUMN_SATURATION_ATOMS)


def render_phase(
    particles: list[Particle],
    params: SimulationParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Projected phase of the particles on the render grid (no support film).

    Parameters
    ----------
    particles : list of Particle
        Objects in occlusion order (later ones hide earlier ones where they overlap, so the
        image agrees with the true label map).
    params : SimulationParams
        Regime, grid, voltage and ``atom_sigma_nm``.
    rng : numpy.random.Generator
        Used for the amorphous texture of aggregates.

    Returns
    -------
    numpy.ndarray
        float32 phase in rad, shape ``(render_size_px, render_size_px)``.

    Notes
    -----
    In the HRTEM regime on-zone crystals are rendered as atomic columns (bilinear splat of
    ``n_atoms * phase_per_atom / p_r^2``); everything else is rendered as a continuous
    field. The whole map is then convolved with the Gaussian atom (``atom_sigma_nm``) in
    Fourier space, which also band-limits the continuous fields before the exit wave is
    formed.
    """
    n = params.render_size_px
    pr = params.render_pixel_size_nm
    scale = interaction_constant(params.voltage_kv) / _SIGMA_300
    sigma = interaction_constant(params.voltage_kv)  # rad / (V A)
    acc = np.zeros((n, n), dtype=np.float64)
    col_y, col_x, col_w = [], [], []
    pr2_a2 = (pr * 10.0) ** 2
    boxes = [_bbox_px(p, n, pr) for p in particles]
    for index, p in enumerate(particles):
        i0, i1, j0, j1 = boxes[index]
        if i1 <= i0 or j1 <= j0:
            continue
        later = [(q, b) for q, b in zip(particles[index + 1:], boxes[index + 1:], strict=True)
                 if _boxes_overlap(boxes[index], b)]
        later_nm = [(q, (b[0] * pr, b[1] * pr, b[2] * pr, b[3] * pr)) for q, b in later]
        bbox_nm = (i0 * pr, (i1 - 1) * pr, j0 * pr, (j1 - 1) * pr)
        if p.crystalline and p.on_zone and params.regime == "hrtem":
            a = LATTICE_CONSTANT_NM[p.material]
            atom_length = a / math.sqrt(2.0)
            if p.shape == "decahedral":
                parts = []
                for w in range(5):
                    ang = p.lattice_angle_deg + 72.0 * w
                    y, x, _ = fcc_columns(lattice_constant_nm=a,
                                          origin_yx_nm=(p.center_y_nm, p.center_x_nm),
                                          angle_deg=ang, bbox_nm=bbox_nm)
                    polar = np.arctan2(y - p.center_y_nm, x - p.center_x_nm)
                    rel = np.mod(polar - math.radians(p.lattice_angle_deg), 2.0 * math.pi)
                    keep = np.floor(rel / (2.0 * math.pi / 5.0)).astype(int) == w
                    parts.append((y[keep], x[keep]))
                y = np.concatenate([q[0] for q in parts])
                x = np.concatenate([q[1] for q in parts])
            else:
                y, x, _ = fcc_columns(
                    lattice_constant_nm=a,
                    origin_yx_nm=(p.lattice_origin_y_nm, p.lattice_origin_x_nm),
                    angle_deg=p.lattice_angle_deg, bbox_nm=bbox_nm,
                    fault=p.fault, fault_layer=p.fault_layer,
                )
            t = particle_thickness(p, y, x)
            keep = t > 0
            if later:
                keep &= ~_occluded_points(later_nm, y, x)
            atoms = _saturated_atoms(t[keep] / atom_length)
            col_y.append(y[keep] / pr)
            col_x.append(x[keep] / pr)
            col_w.append(atoms * (PHASE_PER_ATOM_RAD_A2 * scale / pr2_a2))
            # restore the mean phase removed by the saturation as a smooth field, so that
            # the particle's mean phase stays sigma V0 t (mass-thickness, Fresnel rims)
            yy = (np.arange(i0, i1) * pr)[:, None]
            xx = (np.arange(j0, j1) * pr)[None, :]
            t_px = particle_thickness(p, yy, xx)
            n_px = t_px / atom_length
            missing = (n_px - _saturated_atoms(n_px)) * atom_length
            phase = sigma * mean_inner_potential_v(p.material) * missing * 10.0
            if later:
                phase = np.where(_occluded_grid(later, (i0, i1, j0, j1), pr), 0.0, phase)
            acc[i0:i1, j0:j1] += phase
            continue
        yy = (np.arange(i0, i1) * pr)[:, None]
        xx = (np.arange(j0, j1) * pr)[None, :]
        if p.shape == "nanotube":
            phase = _nanotube_phase(p, yy, xx, params=params, scale=scale)
        elif p.shape == "aggregate":
            t = particle_thickness(p, yy, xx)
            lam = _POLYMER_ATOMS_PER_A3 * t * 10.0 * pr2_a2  # mean atoms per pixel
            atoms = rng.poisson(lam)
            phase = atoms * (_PHASE_PER_C_ATOM_RAD_A2 * scale / pr2_a2)
        else:
            t = particle_thickness(p, yy, xx)
            phase = sigma * mean_inner_potential_v(p.material) * t * 10.0
            if p.fringe_period_nm > 0 and params.regime == "hrtem":
                fa = math.radians(p.fringe_angle_deg)
                arg = ((xx - p.lattice_origin_x_nm) * math.cos(fa)
                       + (yy - p.lattice_origin_y_nm) * math.sin(fa)) / p.fringe_period_nm
                phase = phase * (1.0 + p.fringe_amplitude * np.cos(2.0 * math.pi * arg))
        if later:
            phase = np.where(_occluded_grid(later, (i0, i1, j0, j1), pr), 0.0, phase)
        acc[i0:i1, j0:j1] += phase
    if col_y:
        _splat(acc, np.concatenate(col_y), np.concatenate(col_x), np.concatenate(col_w))
    if params.regime == "lowmag" and params.edge_softness_nm > 0:
        # diffuse particle edges (the support is added later and stays sharp); "nearest" so
        # that particles cut by the image edge do not bleed into the opposite side
        acc = ndimage.gaussian_filter(acc, params.edge_softness_nm / pr, mode="nearest")
    # Gaussian atom (and anti-aliasing of the continuous fields) in Fourier space.
    spec = scipy.fft.rfft2(acc.astype(np.float32), workers=-1)
    ky = np.fft.fftfreq(n, d=pr).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(n, d=pr).astype(np.float32)[None, :]
    s = np.float32(2.0 * math.pi**2 * params.atom_sigma_nm**2)
    spec *= np.exp(-s * ky * ky) * np.exp(-s * kx * kx)
    return scipy.fft.irfft2(spec, s=(n, n), workers=-1).astype(np.float32, copy=False)


def _texture_field(shape, params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``texture_length_nm``.

    White noise smoothed by a Gaussian of standard deviation ``sigma`` (render pixels) and
    rescaled by ``2 sqrt(pi) sigma`` (the theoretical standard deviation of 2-D
    Gaussian-filtered white noise is ``1 / (2 sqrt(pi) sigma)``).
    """
    sigma_px = params.texture_length_nm / params.render_pixel_size_nm
    noise = rng.standard_normal(shape)
    g = ndimage.gaussian_filter(noise, sigma_px, mode="wrap")
    g *= 2.0 * math.sqrt(math.pi) * max(sigma_px, 0.5)
    return g


def render_diffraction_attenuation(
    particles: list[Particle], params: SimulationParams, rng: np.random.Generator
) -> np.ndarray | None:
    """Extra amplitude attenuation from diffraction contrast inside crystalline particles.

    In low-magnification bright field, grains and regions of a particle that are near a Bragg
    condition scatter electrons outside the objective aperture and look darker; thickness
    variation adds to it. Both are modelled as a spatially varying absorption: the exit wave
    amplitude is multiplied by ``exp(-a)`` with ``a = kappa phi_V0t s g``, where
    ``phi_V0t = sigma V0 t`` is the particle's mean-inner-potential phase, ``kappa`` the
    ``absorption``, ``s`` = ``interior_texture`` and ``g`` a unit-variance Gaussian random
    field with correlation length ``texture_length_nm`` (independent per particle). The
    mean attenuation is unchanged (``g`` has zero mean), the phase is not modulated (no
    artificial phase caustics).

    Parameters
    ----------
    particles : list of Particle
        Objects in occlusion order (later ones hide earlier ones).
    params : SimulationParams
        Regime, grid, ``absorption``, ``interior_texture``, ``texture_length_nm``.
    rng : numpy.random.Generator
        Source of the random fields.

    Returns
    -------
    numpy.ndarray or None
        float32 map ``a`` (dimensionless, may be negative) on the render grid, or None when
        there is nothing to add (HRTEM, ``interior_texture == 0`` or no crystals).
    """
    if params.regime != "lowmag" or params.interior_texture <= 0 or params.absorption <= 0:
        return None
    n = params.render_size_px
    pr = params.render_pixel_size_nm
    sigma = interaction_constant(params.voltage_kv)
    boxes = [_bbox_px(p, n, pr) for p in particles]
    out = None
    for index, p in enumerate(particles):
        i0, i1, j0, j1 = boxes[index]
        if not p.crystalline or i1 <= i0 or j1 <= j0:
            continue
        yy = (np.arange(i0, i1) * pr)[:, None]
        xx = (np.arange(j0, j1) * pr)[None, :]
        t = particle_thickness(p, yy, xx)
        phase = sigma * mean_inner_potential_v(p.material) * t * 10.0
        a = (params.absorption * params.interior_texture) * phase * _texture_field(
            t.shape, params, rng)
        later = [(q, b) for q, b in zip(particles[index + 1:], boxes[index + 1:], strict=True)
                 if _boxes_overlap(boxes[index], b)]
        if later:
            a = np.where(_occluded_grid(later, (i0, i1, j0, j1), pr), 0.0, a)
        if out is None:
            out = np.zeros((n, n), dtype=np.float32)
        out[i0:i1, j0:j1] += a.astype(np.float32)
    return out


def _nanotube_phase(p: Particle, yy, xx, *, params: SimulationParams, scale: float):
    u, v = _local(p, yy, xx)
    along = np.abs(u) <= 0.5 * p.length_nm
    if params.regime == "hrtem":
        # concentric graphene walls, 0.34 nm apart: each a thin shell of one layer
        n_walls = max(int((p.radius_nm - p.radius2_nm) / _GRAPHITE_SPACING_NM), 1)
        layers = np.zeros(np.broadcast(u, v).shape)
        for i in range(n_walls):
            rho = p.radius_nm - (i + 0.5) * _GRAPHITE_SPACING_NM
            if rho <= _WALL_HALF_WIDTH_NM:
                break
            layers = layers + _shell_projection(
                v, rho + _WALL_HALF_WIDTH_NM, rho - _WALL_HALF_WIDTH_NM
            ) / (2.0 * _WALL_HALF_WIDTH_NM)
        phase = layers * (_PHASE_PER_C_ATOM_RAD_A2 * _GRAPHENE_ATOMS_PER_A2 * scale)
    else:
        t = _shell_projection(v, p.radius_nm, p.radius2_nm)
        phase = t * 10.0 * _GRAPHITE_ATOMS_PER_A3 * _PHASE_PER_C_ATOM_RAD_A2 * scale
    return np.where(along, phase, 0.0)


def render_labels(particles: list[Particle], params: SimulationParams):
    """True instance labels on the output grid from the analytic thickness (t > 0).

    Parameters
    ----------
    particles : list of Particle
        Objects in occlusion order: later ones overwrite earlier ones.
    params : SimulationParams
        Output grid (``image_size_px``, ``pixel_size_nm``).

    Returns
    -------
    labels : numpy.ndarray
        int32 map, 0 background, ids 1..N (consecutive, in occlusion order).
    kept : list of int
        For each id ``i`` (1-based), ``kept[i - 1]`` is the index into ``particles``.
        Particles with no visible pixel (outside the field or fully hidden) are dropped.
    """
    n = params.image_size_px
    px = params.pixel_size_nm
    raw = np.zeros((n, n), dtype=np.int32)
    for index, p in enumerate(particles):
        i0, j0, mask = _footprint(p, n, px)
        if mask.size == 0:
            continue
        region = raw[i0:i0 + mask.shape[0], j0:j0 + mask.shape[1]]
        region[mask] = index + 1
    present = np.flatnonzero(np.bincount(raw.ravel(), minlength=len(particles) + 1)[1:])
    lut = np.zeros(len(particles) + 1, dtype=np.int32)
    lut[present + 1] = np.arange(1, present.size + 1, dtype=np.int32)
    return lut[raw], [int(i) for i in present]


def particle_attributes(particles: list[Particle], params: SimulationParams) -> pd.DataFrame:
    """Per-particle ground-truth attributes beyond the label-map measurements.

    Parameters
    ----------
    particles : list of Particle
        The objects (one row each, in the given order).
    params : SimulationParams
        Used for the pixel size (centre in pixels).

    Returns
    -------
    pandas.DataFrame
        Columns ``kind``, ``shape``, ``material``, ``fault_type``, ``has_fault`` (bool),
        ``on_zone`` (bool), ``lattice_angle_deg``, ``true_center_y_px``,
        ``true_center_x_px``, ``true_size_nm`` (nominal diameter / width in nm).
    """
    rows = []
    px = params.pixel_size_nm
    for p in particles:
        if p.shape in ("rod", "nanotube"):
            size = 2.0 * p.radius_nm
        elif p.shape == "round":
            size = p.radius_nm + p.radius2_nm
        elif p.shape == "aggregate":
            size = 2.0 * particle_bound_radius_nm(p)
        else:
            size = p.radius_nm + max(p.radius2_nm, 0.0) if p.radius2_nm else 2 * p.radius_nm
        rows.append({
            "kind": p.kind,
            "shape": p.shape,
            "material": p.material,
            "fault_type": p.fault,
            "has_fault": p.has_fault,
            "on_zone": bool(p.on_zone and p.crystalline),
            "lattice_angle_deg": p.lattice_angle_deg if p.crystalline else np.nan,
            "true_center_y_px": p.center_y_nm / px,
            "true_center_x_px": p.center_x_nm / px,
            "true_size_nm": size,
        })
    columns = ["kind", "shape", "material", "fault_type", "has_fault", "on_zone",
               "lattice_angle_deg", "true_center_y_px", "true_center_x_px", "true_size_nm"]
    return pd.DataFrame(rows, columns=columns)
