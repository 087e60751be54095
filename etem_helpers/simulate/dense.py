"""Dense assemblies: monolayers of touching faceted particles separated by thin bright gaps.

Self-assembled monolayers of nanocrystals (triangular plates / tetrahedra, cubes, hexagonal
plates, rods, spheres) look very different from the sparse particles of
:func:`etem_helpers.simulate.specimen.place_particles`: particles of one shape and nearly one size
tile the support at a high area fraction, neighbours face each other along parallel facets,
and only a thin gap (the ligand shell, 0.3-2 nm, bright in bright field) separates them.
Segmentation models that never saw this merge neighbours into long bands.

:class:`DenseSimulationParams` is a :class:`~etem_helpers.simulate.SimulationParams` with the
settings of such an assembly; :func:`etem_helpers.simulate.simulate_micrograph` places its
particles with :func:`place_dense_particles` instead of the sparse placement. Everything else
(optics, support, detector, exact labels, ground-truth table) is the same simulator.
:func:`sample_dense_params` draws realistic low-magnification assemblies for training data, and
``generate_dataset(..., dense_fraction=f)`` mixes them into a dataset.

Placement (:func:`place_dense_particles`)
    One shape family per image, drawn from ``kinds`` (``"faceted"``: regular triangles,
    squares or hexagons with probabilities 0.4 / 0.3 / 0.3; ``"rod"``: capsules of one aspect
    ratio; ``"round"``: nearly circular discs). ``n_domains`` seed particles at random
    positions and orientations grow domains breadth-first: each particle proposes a
    neighbour across each of its facets (rods: both sides and both ends; discs: six
    hexagonal directions), with the facing facet parallel (triangles alternate up / down),
    rotated by up to ``orientation_jitter_deg``, shifted slightly along the facet, at the
    gap drawn uniformly from ``gap_range_nm``. A proposal is accepted when its footprint stays
    at least ``gap_range_nm[0]`` away from every particle already there (separating-axis test
    on circumscribing convex polygons, so the analytic footprints never touch); with
    probability ``vacancy_fraction`` an accepted site is left empty (a vacancy). Growth stops
    when the particles whose centres lie in the field cover ``area_fraction`` of it (by their
    analytic areas) or ``n_particles`` were placed. When every domain has stopped growing,
    all particles propose neighbours once more (twice at most), then new domains are seeded.
    Where two domains meet, misfit leaves wider gaps (grain boundaries), as in real
    monolayers. Particles may be cut by the image edge (a window of a larger monolayer).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from .params import (
    SimulationParams,
    _log_uniform,
    _sample_lowmag,
    _wavelength_nm,
)

__all__ = [
    "DENSE_KINDS",
    "DENSE_FACETS",
    "DenseSimulationParams",
    "place_dense_particles",
    "sample_dense_params",
]

#: Shapes that can be packed densely (decahedra, nanotubes and aggregates cannot).
DENSE_KINDS: tuple[str, ...] = ("faceted", "rod", "round")
#: Facet counts of faceted particles in a dense assembly (they tile the plane) and their odds.
DENSE_FACETS: tuple[int, ...] = (3, 4, 6)
_FACET_PROBABILITIES = (0.4, 0.3, 0.3)
_CIRCLE_VERTICES = 24  # circumscribing polygon of discs and rod caps
_SEED_ATTEMPTS = 60
_MAX_DOMAINS = 50
_REFILLS = 2


@dataclass(frozen=True)
class DenseSimulationParams(SimulationParams):
    """Settings of a micrograph of a dense assembly (validated on construction).

    All fields of :class:`~etem_helpers.simulate.SimulationParams` keep their meaning, except:

    * ``diameter_range_nm`` defaults to (4.5, 5.5) nm (a size CV of 6 %);
    * ``kinds`` (default ``("faceted",)``) must come from :data:`DENSE_KINDS`; one of them is
      drawn per image (a monolayer has one shape);
    * ``n_particles`` (default 500) is an upper bound: placement stops at ``area_fraction``;
    * ``touching_fraction`` and ``edge_fraction`` are not used (every particle touches its
      neighbours; particles at the image edge are cut by it);
    * ``diameter_range_nm`` is the size spread of the one population: uniform in
      ``(d (1 - sqrt(3) c), d (1 + sqrt(3) c))`` gives a coefficient of variation ``c``. It is
      the circumscribed diameter of faceted particles and the width of rods.

    Parameters
    ----------
    area_fraction : float
        Fraction of the field covered by particles, 0.05-0.9 (self-assembled monolayers:
        0.4-0.75).
    gap_range_nm : tuple of float
        (min, max) gap between the facing facets of neighbours in nm, 0 <= min <= max <= 10
        (ligand shells: 0.3-2 nm). The gap is the support between the particles, so it is
        background in the labels where it is wider than a pixel.
    orientation_jitter_deg : float
        Largest rotation (degrees, 0-30) of a particle away from the orientation that makes
        its facet parallel to its neighbour's.
    n_domains : int
        Number of domains (grains) grown from independent seeds, 1-50.
    vacancy_fraction : float
        Probability (0-0.5) that an accepted site is left empty.

    Examples
    --------
    >>> from etem_helpers.simulate import simulate_micrograph
    >>> from etem_helpers.simulate.dense import DenseSimulationParams
    >>> params = DenseSimulationParams(regime="lowmag", pixel_size_nm=0.5, image_size_px=128,
    ...                                diameter_range_nm=(9.0, 11.0), area_fraction=0.6)
    >>> sim = simulate_micrograph(params, seed=0)
    >>> bool(sim.labels.max() > 10)
    True
    """

    packing: ClassVar[str] = "dense"

    n_particles: int = 500
    diameter_range_nm: tuple[float, float] = (4.5, 5.5)
    kinds: tuple[str, ...] = ("faceted",)
    area_fraction: float = 0.6
    gap_range_nm: tuple[float, float] = (0.5, 1.5)
    orientation_jitter_deg: float = 3.0
    n_domains: int = 2
    vacancy_fraction: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [k for k in self.kinds if k not in DENSE_KINDS]
        if bad:
            raise ValueError(
                f"DenseSimulationParams.kinds={self.kinds!r}: {bad} cannot be packed densely; "
                f"use shapes from {DENSE_KINDS}."
            )
        for name, (low, high) in (("area_fraction", (0.05, 0.9)),
                                  ("orientation_jitter_deg", (0.0, 30.0)),
                                  ("vacancy_fraction", (0.0, 0.5))):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if isinstance(value, bool) or not (math.isfinite(number) and low <= number <= high):
                raise ValueError(
                    f"DenseSimulationParams.{name}={value!r} must be a number in "
                    f"[{low}, {high}]."
                )
            object.__setattr__(self, name, number)
        value = self.n_domains
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not (
            1 <= value <= _MAX_DOMAINS
        ):
            raise ValueError(
                f"DenseSimulationParams.n_domains={value!r} must be an integer in "
                f"[1, {_MAX_DOMAINS}]."
            )
        object.__setattr__(self, "n_domains", int(value))
        gap = self.gap_range_nm
        try:
            lo, hi = (float(v) for v in gap)
        except (TypeError, ValueError):
            lo = hi = math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 10.0):
            raise ValueError(
                f"DenseSimulationParams.gap_range_nm={gap!r} must be a pair (min_nm, max_nm) "
                "with 0 <= min <= max <= 10 (ligand gaps are 0.3-2 nm)."
            )
        object.__setattr__(self, "gap_range_nm", (lo, hi))


# --------------------------------------------------------------------------------------
# Geometry: circumscribing convex polygons and the separating-axis test
# --------------------------------------------------------------------------------------
def _outline_local(p) -> np.ndarray:
    """Vertices (u, v) in the particle's own frame of a convex polygon containing it."""
    if p.shape == "faceted":
        alpha = 2.0 * math.pi * np.arange(p.n_facets) / p.n_facets
        stretch = p.radius_nm / p.radius2_nm if p.radius2_nm > 0 else 1.0
        return np.stack([p.radius_nm * np.cos(alpha), p.radius_nm * np.sin(alpha) / stretch], 1)
    if p.shape == "round":
        bulge = 1.0 + sum(abs(a) for _, a, _ in p.outline)
        scale = bulge / math.cos(math.pi / _CIRCLE_VERTICES)
        t = 2.0 * math.pi * np.arange(_CIRCLE_VERTICES) / _CIRCLE_VERTICES
        return np.stack([p.radius_nm * scale * np.cos(t), p.radius2_nm * scale * np.sin(t)], 1)
    if p.shape == "rod":
        half = _CIRCLE_VERTICES // 2
        r = p.radius_nm / math.cos(math.pi / (2 * half))
        beta = np.linspace(-0.5 * math.pi, 0.5 * math.pi, half + 1)
        cap = np.stack([0.5 * p.length_nm + r * np.cos(beta), r * np.sin(beta)], 1)
        return np.concatenate([cap, -cap])
    raise ValueError(f"shape {p.shape!r} cannot be packed densely; use one of {DENSE_KINDS}.")


def _outline_world(p) -> np.ndarray:
    """Vertices (y, x) in nm relative to the particle centre, in world orientation."""
    uv = _outline_local(p)
    ang = math.radians(p.angle_deg)
    c, s = math.cos(ang), math.sin(ang)
    u, v = uv[:, 0], uv[:, 1]
    return np.stack([u * s + v * c, u * c - v * s], 1)


def _edge_normals(vertices: np.ndarray) -> np.ndarray:
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([-edges[:, 1], edges[:, 0]], 1)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _separation(a: np.ndarray, b: np.ndarray, normals: np.ndarray) -> float:
    """Largest gap (nm) between two convex polygons along the given axes (< 0: overlap)."""
    pa = a @ normals.T
    pb = b @ normals.T
    gap = np.maximum(pb.min(0) - pa.max(0), pa.min(0) - pb.max(0))
    return float(gap.max())


def _support(vertices: np.ndarray, direction: np.ndarray) -> float:
    """Support function: how far the polygon reaches from its centre along ``direction``."""
    return float((vertices @ direction).max())


def _polygon_area(p) -> float:
    """Analytic footprint area in nm^2 (what the area fraction counts)."""
    if p.shape == "faceted":
        n = p.n_facets
        stretch = p.radius_nm / p.radius2_nm if p.radius2_nm > 0 else 1.0
        return 0.5 * n * p.radius_nm**2 * math.sin(2.0 * math.pi / n) / stretch
    if p.shape == "round":
        return math.pi * p.radius_nm * p.radius2_nm
    return 2.0 * p.radius_nm * p.length_nm + math.pi * p.radius_nm**2  # rod


@dataclass
class _Body:
    particle: object
    vertices: np.ndarray  # absolute (y, x) nm
    relative: np.ndarray  # relative to the centre
    normals: np.ndarray
    bound_nm: float


def _body(p) -> _Body:
    rel = _outline_world(p)
    return _Body(p, rel + np.array([p.center_y_nm, p.center_x_nm]), rel, _edge_normals(rel),
                 float(np.linalg.norm(rel, axis=1).max()))


# --------------------------------------------------------------------------------------
# Particles and placement
# --------------------------------------------------------------------------------------
def _dense_geometry(rng, params, family: str, *, n_facets: int, aspect: float, angle: float):
    """The outline of one particle of the family at the origin (crystal attributes later)."""
    from .specimen import Particle

    d_lo, d_hi = params.diameter_range_nm
    if params.diameter_distribution == "uniform":
        radius = 0.5 * float(rng.uniform(d_lo, d_hi))
    else:
        radius = 0.5 * float(np.exp(rng.uniform(np.log(d_lo), np.log(d_hi))))
    if family == "faceted":
        return Particle("faceted", 0.0, 0.0, radius, radius, angle_deg=angle, n_facets=n_facets,
                        thickness_nm=2.0 * radius * float(rng.uniform(0.6, 0.9)),
                        taper_nm=radius * math.cos(math.pi / n_facets)
                        * float(rng.uniform(0.05, 0.2)))
    if family == "rod":
        length = min(2.0 * radius * aspect * float(rng.uniform(0.95, 1.05)),
                     0.6 * params.field_of_view_nm)
        return Particle("rod", 0.0, 0.0, radius, angle_deg=angle, length_nm=length,
                        thickness_nm=2.0 * radius)
    radius2 = radius * float(rng.uniform(0.95, 1.0))  # round: nearly circular discs
    return Particle("round", 0.0, 0.0, radius, radius2, angle_deg=angle,
                    thickness_nm=(radius + radius2) * float(rng.uniform(0.8, 1.0)),
                    edge_exponent=params.edge_exponent)


def _with_crystal(rng, params, geometry):
    """``geometry`` (placed) with material, zone axis, lattice and fault drawn as for sparse
    particles (:func:`etem_helpers.simulate.specimen._random_particle`)."""
    from .specimen import _moved, _random_particle

    crystal = _random_particle(rng, params, geometry.shape)
    lattice_angle = crystal.lattice_angle_deg
    if lattice_angle == crystal.angle_deg:  # rods with (111) planes along the axis
        lattice_angle = geometry.angle_deg
    crystal = replace(crystal, lattice_angle_deg=lattice_angle, outline=())
    crystal = _moved(crystal, geometry.center_y_nm, geometry.center_x_nm)
    keep = ("radius_nm", "radius2_nm", "thickness_nm", "length_nm", "angle_deg", "n_facets",
            "taper_nm", "edge_exponent")
    return replace(crystal, **{k: getattr(geometry, k) for k in keep})


def _directions(p, family: str) -> list[tuple[float, float]]:
    """(direction of the neighbour in degrees, orientation of the neighbour in degrees)."""
    a = p.angle_deg
    if family == "faceted":
        n = p.n_facets
        flip = 180.0 if n % 2 else 0.0  # triangles alternate up / down
        return [(a + 360.0 * (k + 0.5) / n, a + flip) for k in range(n)]
    if family == "rod":
        return [(a + 90.0, a), (a - 90.0, a), (a, a), (a + 180.0, a)]
    return [(a + 60.0 * k, a) for k in range(6)]


def _lateral_sigma_nm(p, family: str, direction_deg: float) -> float:
    """Standard deviation of the shift along the shared facet (aligned, not perfect)."""
    if family == "rod":
        along_axis = abs(math.cos(math.radians(direction_deg - p.angle_deg))) > 0.5
        return 0.05 * p.radius_nm if along_axis else 0.05 * (p.length_nm + 2 * p.radius_nm)
    return 0.03 * p.radius_nm


def place_dense_particles(params: DenseSimulationParams, rng: np.random.Generator) -> list:
    """Place the particles of a dense assembly (see the module docstring).

    Parameters
    ----------
    params : DenseSimulationParams
        Shape family (``kinds``), sizes, ``area_fraction``, ``gap_range_nm``,
        ``orientation_jitter_deg``, ``n_domains``, ``vacancy_fraction``, ``n_particles``
        (upper bound).
    rng : numpy.random.Generator
        Source of randomness (deterministic for a given generator state).

    Returns
    -------
    list of Particle
        Disjoint particles (no two footprints overlap or touch: every pair is at least
        ``gap_range_nm[0]`` apart), in placement order.
    """
    from .specimen import _moved

    if not isinstance(params, DenseSimulationParams):
        raise TypeError(
            f"params must be a DenseSimulationParams, got {type(params).__name__}."
        )
    field = params.field_of_view_nm
    family = str(rng.choice(np.array(params.kinds)))
    n_facets = int(rng.choice(np.array(DENSE_FACETS), p=_FACET_PROBABILITIES))
    aspect = float(rng.uniform(2.0, 4.0))
    gap_lo, gap_hi = params.gap_range_nm
    min_gap = gap_lo - 1e-6
    jitter = params.orientation_jitter_deg
    target_nm2 = params.area_fraction * field * field

    bodies: list[_Body] = []  # placed particles and vacancies (both block later proposals)
    centres = np.zeros((0, 2))
    bounds = np.zeros(0)
    placed: list = []
    real: list[bool] = []  # bodies that are particles (not vacancies)
    covered = 0.0

    def fits(body: _Body) -> bool:
        cy, cx = body.particle.center_y_nm, body.particle.center_x_nm
        margin = 0.5 * body.bound_nm
        if not (-margin <= cy <= field + margin and -margin <= cx <= field + margin):
            return False
        if not bodies:
            return True
        near = np.flatnonzero(np.hypot(centres[:, 0] - cy, centres[:, 1] - cx)
                              < bounds + body.bound_nm + gap_lo)
        for i in near:
            other = bodies[i]
            axes = np.concatenate([body.normals, other.normals])
            if _separation(body.vertices, other.vertices, axes) < min_gap:
                return False
        return True

    def accept(body: _Body, *, vacancy: bool) -> None:
        nonlocal centres, bounds, covered
        bodies.append(body)
        real.append(not vacancy)
        centres = np.vstack([centres, [[body.particle.center_y_nm, body.particle.center_x_nm]]])
        bounds = np.append(bounds, body.bound_nm)
        if vacancy:
            return
        placed.append(_with_crystal(rng, params, body.particle))
        p = body.particle
        if 0.0 <= p.center_y_nm < field and 0.0 <= p.center_x_nm < field:
            covered += _polygon_area(p)

    def new_domain() -> deque | None:
        angle = float(rng.uniform(0.0, 360.0))
        proto = _dense_geometry(rng, params, family, n_facets=n_facets, aspect=aspect,
                                angle=angle)
        for _ in range(_SEED_ATTEMPTS):
            cy, cx = (float(v) for v in rng.uniform(0.0, field, size=2))
            body = _body(_moved(proto, cy, cx))
            if fits(body):
                accept(body, vacancy=False)
                return deque([body])
        return None

    def done() -> bool:
        return covered >= target_nm2 or len(placed) >= params.n_particles

    domains = [d for d in (new_domain() for _ in range(params.n_domains)) if d is not None]
    failed_seeds = refills = 0
    while not done():
        active = [d for d in domains if d]
        if not active and refills < _REFILLS:
            # every domain is stuck: let all particles propose neighbours once more (other
            # sizes and jitter may fit the holes) before seeding new domains
            refills += 1
            domains = [deque(b for b, is_real in zip(bodies, real, strict=True) if is_real)]
            continue
        if not active:
            domain = new_domain()
            if domain is None:
                failed_seeds += 1
                if failed_seeds >= 3:
                    break  # the field is full at this gap and size
                continue
            domains.append(domain)
            continue
        for domain in active:
            parent = domain.popleft()
            p = parent.particle
            for direction_deg, orientation_deg in _directions(p, family):
                if done():
                    break
                phi = math.radians(direction_deg)
                normal = np.array([math.sin(phi), math.cos(phi)])  # (y, x)
                # a site already taken (by a particle or a vacancy): skip without drawing
                h_parent = _support(parent.relative, normal)
                guess = np.array([p.center_y_nm, p.center_x_nm]) + (2.0 * h_parent) * normal
                if np.hypot(*(centres - guess).T).min() < 0.5 * h_parent:
                    continue
                angle = orientation_deg + float(rng.uniform(-jitter, jitter))
                proto = _dense_geometry(rng, params, family, n_facets=n_facets, aspect=aspect,
                                        angle=angle)
                rel = _outline_world(proto)
                tangent = np.array([normal[1], -normal[0]])
                gap = float(rng.uniform(gap_lo, gap_hi))
                reach = h_parent + gap + _support(rel, -normal)
                shift = float(rng.normal(0.0, _lateral_sigma_nm(p, family, direction_deg)))
                cy, cx = (np.array([p.center_y_nm, p.center_x_nm]) + reach * normal
                          + shift * tangent)
                body = _body(_moved(proto, float(cy), float(cx)))
                if not fits(body):
                    continue
                vacancy = bool(rng.random() < params.vacancy_fraction)
                accept(body, vacancy=vacancy)
                if not vacancy:
                    domain.append(body)
            if done():
                break
    return placed


# --------------------------------------------------------------------------------------
# Random parameters for training data
# --------------------------------------------------------------------------------------
def sample_dense_params(
    rng: np.random.Generator, image_size_px: int = 512
) -> DenseSimulationParams:
    """Draw realistic parameters of a low-magnification image of a dense assembly.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    image_size_px : int
        Output image side in pixels.

    Returns
    -------
    DenseSimulationParams

    Notes
    -----
    Optics, detector, support and material are drawn as for sparse low-magnification images
    (:func:`etem_helpers.simulate.sample_params`, same voltage / C_s draw first), then:

    * pixel size logU(0.25, 1) nm (coarser than sparse images: monolayers are imaged at low
      magnification, where a 0.3-2 nm gap is 0.3-8 px wide); drift, jitter, texture and
      support-grain lengths, drawn in pixels, follow it;
    * shape family: faceted (triangles / squares / hexagons 0.4 / 0.3 / 0.3) 60 %, rods
      20 %, discs 20 %;
    * mean circumscribed diameter U(28, 72) px (rods: width U(14, 32) px), at least the size
      at which ``n_particles`` = 500 particles reach the area fraction, within 1.2-90 nm and
      a sixth of the field; size spread uniform with a coefficient of variation
      U(0.05, 0.15); faceted particles are flat plates whose thickness ramps up over 5-20 %
      of the apothem (sharp facets);
    * area fraction U(0.4, 0.75); gap range: minimum U(0.3, 1.2) nm, maximum = minimum
      + U(0.2, 0.8) nm, at most 2 nm; orientation jitter U(0, 5) degrees; 1-4 domains;
      vacancies U(0, 0.08);
    * sharper particle edges than sparse images (``edge_softness_nm`` U(0.3, 1) px) and a
      smaller defocus (granularity period sqrt(lambda |df|) U(1, 3) px, 85 % underfocus),
      so that the gaps stay visible as in real monolayer images; no outline roughness.
    """
    voltage = float(rng.choice([300.0, 200.0, 80.0], p=[0.6, 0.3, 0.1]))
    corrected = rng.random() < 0.3
    cs = float(rng.uniform(-0.04, 0.04)) if corrected else float(rng.uniform(0.5, 2.0))
    base = _sample_lowmag(rng, voltage_kv=voltage, cs_mm=cs, image_size_px=image_size_px)
    # coarser sampling than sparse images (monolayers are imaged at low magnification, where
    # a 0.3-2 nm gap is 0.3-8 px); lengths drawn in pixels follow the new pixel size
    pixel = _log_uniform(rng, 0.25, 1.0)
    scale = pixel / base.pixel_size_nm
    base = base.replace(
        pixel_size_nm=pixel, drift_nm=base.drift_nm * scale, jitter_nm=base.jitter_nm * scale,
        texture_length_nm=base.texture_length_nm * scale,
        support_grain_nm=base.support_grain_nm * scale,
        diameter_range_nm=(1.0, 1.0),  # drawn below
    )
    field = base.field_of_view_nm
    family = str(rng.choice(np.array(["faceted", "rod", "round"]), p=[0.6, 0.2, 0.2]))
    area_fraction = float(rng.uniform(0.4, 0.75))
    # 500 triangles (area 0.325 d^2) must be able to reach the area fraction
    d_min_px = math.sqrt(area_fraction * image_size_px**2 / (0.9 * 500 * 0.325))
    if family == "rod":  # width; the length is 2-4 widths
        d_min_px, d_max_px = max(14.0, 0.5 * d_min_px), max(32.0, 0.5 * d_min_px)
    else:
        d_min_px, d_max_px = max(28.0, d_min_px), max(72.0, d_min_px)
    d_nm = float(rng.uniform(d_min_px, d_max_px)) * pixel
    d_nm = float(np.clip(d_nm, 1.2, min(90.0, field / 6.0)))
    half = math.sqrt(3.0) * float(rng.uniform(0.05, 0.15))
    d_lo, d_hi = max(1.0, d_nm * (1.0 - half)), min(100.0, d_nm * (1.0 + half))
    gap_lo = float(rng.uniform(0.3, 1.2))
    gap_hi = min(gap_lo + float(rng.uniform(0.2, 0.8)), 2.0)
    period_nm = float(rng.uniform(1.0, 3.0)) * pixel
    sign = 1.0 if rng.random() < 0.85 else -1.0
    defocus = sign * period_nm**2 / _wavelength_nm(voltage)
    fields = base.to_dict()
    fields.update(
        diameter_range_nm=(d_lo, d_hi), diameter_distribution="uniform", kinds=(family,),
        round_fraction=None, n_particles=500, outline_roughness=0.0,
        edge_softness_nm=float(rng.uniform(0.3, 1.0)) * pixel,
        defocus_nm=float(np.clip(defocus, -20000.0, 20000.0)),
        astigmatism_nm=min(float(rng.uniform(0.0, 0.02)) * abs(defocus), 50.0),
        area_fraction=area_fraction, gap_range_nm=(gap_lo, gap_hi),
        orientation_jitter_deg=float(rng.uniform(0.0, 5.0)),
        n_domains=int(rng.integers(1, 5)),
        vacancy_fraction=float(rng.uniform(0.0, 0.08)),
    )
    return DenseSimulationParams(**fields)
