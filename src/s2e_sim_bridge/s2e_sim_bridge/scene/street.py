"""Procedural street scenes made only of Gaussians, in the robot world (z up, floor z = 0).

The street runs along world x, centred on the origin: an asphalt road (lane markings and a
zebra crossing) between two raised sidewalks with kerbs, building facades with windows on
both sides and across both ends, lamp posts, trees, benches, and boxes / bins standing as
obstacles. Every surface is a jittered grid of flat Gaussians; the grid spacing is solved so
the scene holds about ``num_gaussians`` of them, and each Gaussian is wide enough (relative
to its neighbours) that a camera 0.5-1 m above the ground sees no holes at any resolution.

Layout is drawn from ``numpy.random.default_rng(seed)`` and each primitive samples with its
own generator derived from ``(seed, index)``, so one seed always gives the same scene bytes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from s2e_policy.errors import S2EError
from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.info import SceneInfo
from s2e_sim_bridge.scene.sh import MAX_SH_DEGREE, rgb_to_sh0
from s2e_sim_bridge.scene.transform import rotmats_to_quats

# Surface Gaussians: standard deviation in the surface plane per unit grid cell (0.8 gives
# an accumulated alpha > 0.99 everywhere between jittered neighbours), thickness along the normal
# per unit in-plane deviation, centre jitter per unit cell, and opacity.
SIGMA_PER_CELL = 0.8
THICKNESS_PER_SIGMA = 0.1
JITTER_PER_CELL = 0.15
SURFACE_OPACITY = 0.99
# Blobs (tree crowns, lamp heads): isotropic Gaussians on an ellipsoid shell, pushed inwards
# by up to this fraction of the radius, with std devs of (1 +- spread) x the grid spacing.
BLOB_SHELL_DEPTH = 0.3
BLOB_SIGMA_PER_CELL = 1.0
BLOB_SIGMA_SPREAD = 0.2
BLOB_OPACITY = 0.9
# Fewest Gaussians along any edge of a primitive (thin legs and poles stay closed).
MIN_CELLS_PER_EDGE = 2
MIN_CELLS_AROUND = 8
# Grid spacing search: rounds of rescaling and the smallest spacing allowed (metres).
SPACING_ITERATIONS = 4
MIN_SPACING_M = 0.005
# Smallest street the layout makes sense for (metres) and the fewest Gaussians allowed.
MIN_STREET_LENGTH_M = 10.0
MIN_STREET_WIDTH_M = 8.0
MIN_ROAD_WIDTH_M = 2.0
MIN_SIDEWALK_M = 2.5  # trees stand 1.6 m from the kerb, benches 1.2 m from the facade
MAX_KERB_HEIGHT_M = 0.3
MIN_BUILDING_HEIGHT_M = 3.0
MIN_BUILDING_WIDTH_M = 2.0
MIN_SPACING_ALONG_M = 2.0
MIN_GAUSSIANS = 5_000
# Random tries to find a free spot for one bench / obstacle before giving up on it.
MAX_PLACEMENT_TRIES = 200
# Material colours (linear RGB in [0, 1]) and their variation.
COLOUR_NOISE = 0.025  # std of per-Gaussian colour noise
ASPHALT_GREY = 0.24
ASPHALT_GRAIN = 0.03  # std of per-Gaussian asphalt brightness
ASPHALT_TINT = np.array([1.0, 0.98, 0.96])
PAINT_GREY = 0.88
PAVING_GREY = (0.52, 0.62)  # range of per-slab brightness
PAVING_TINT = np.array([1.02, 1.0, 0.95])
GROUT_GREY = 0.38
GLASS_RGB = (0.16, 0.19, 0.24)
LIT_GLASS_RGB = (0.85, 0.75, 0.5)
LIT_WINDOW_FRACTION = 0.2
GLASS_VARIATION = 0.05  # per-window brightness spread
SILL_RGB = (0.8, 0.8, 0.8)


@dataclass(frozen=True)
class StreetConfig:
    """Parameters of :func:`generate_street_scene` (lengths in metres).

    Attributes:
        length_m: street length along x (end facades at +-length/2).
        width_m: facade-to-facade width along y.
        road_width_m: asphalt width (centred); sidewalks fill the rest.
        kerb_height_m: sidewalk height above the road. Default 4.5 cm stays well below the
            collision height band (from 10 cm above the floor), so kerbs are drivable.
        num_gaussians: target Gaussian count (met to within a few percent).
        sh_degree: SH degree of the output (bands above 0 are zero: diffuse colours).
        building_height_m: (min, max) facade height.
        building_width_m: (min, max) width of one building along the street.
        lamp_spacing_m: distance between lamp posts on one side.
        tree_spacing_m: distance between trees on one side.
        num_benches: benches on the sidewalks.
        num_obstacles: boxes and bins on the road and sidewalks.
        navigable_margin_m: navigable bounds stop this far from the facades.
    """

    length_m: float = 60.0
    width_m: float = 20.0
    road_width_m: float = 8.0
    kerb_height_m: float = 0.045
    num_gaussians: int = 100_000
    sh_degree: int = 0
    building_height_m: tuple[float, float] = (6.0, 14.0)
    building_width_m: tuple[float, float] = (6.0, 14.0)
    lamp_spacing_m: float = 12.0
    tree_spacing_m: float = 12.0
    num_benches: int = 4
    num_obstacles: int = 10
    navigable_margin_m: float = 0.5

    def validate(self) -> None:
        """Raise :class:`S2EError` naming the field when a value is out of range."""
        lo_h, hi_h = self.building_height_m
        lo_w, hi_w = self.building_width_m
        rules = {
            "length_m": (self.length_m >= MIN_STREET_LENGTH_M, f">= {MIN_STREET_LENGTH_M}"),
            "width_m": (self.width_m >= MIN_STREET_WIDTH_M, f">= {MIN_STREET_WIDTH_M}"),
            "road_width_m": (
                MIN_ROAD_WIDTH_M <= self.road_width_m <= self.width_m - 2 * MIN_SIDEWALK_M,
                f"in [{MIN_ROAD_WIDTH_M}, width_m - {2 * MIN_SIDEWALK_M}] "
                f"(sidewalks of at least {MIN_SIDEWALK_M} m)",
            ),
            "kerb_height_m": (
                0.0 < self.kerb_height_m <= MAX_KERB_HEIGHT_M,
                f"in (0, {MAX_KERB_HEIGHT_M}]",
            ),
            "num_gaussians": (self.num_gaussians >= MIN_GAUSSIANS, f">= {MIN_GAUSSIANS}"),
            "sh_degree": (0 <= self.sh_degree <= MAX_SH_DEGREE, f"in 0..{MAX_SH_DEGREE}"),
            "building_height_m": (
                MIN_BUILDING_HEIGHT_M <= lo_h <= hi_h,
                f"(min, max) with {MIN_BUILDING_HEIGHT_M} <= min <= max",
            ),
            "building_width_m": (
                MIN_BUILDING_WIDTH_M <= lo_w <= hi_w,
                f"(min, max) with {MIN_BUILDING_WIDTH_M} <= min <= max",
            ),
            "lamp_spacing_m": (
                self.lamp_spacing_m >= MIN_SPACING_ALONG_M,
                f">= {MIN_SPACING_ALONG_M}",
            ),
            "tree_spacing_m": (
                self.tree_spacing_m >= MIN_SPACING_ALONG_M,
                f">= {MIN_SPACING_ALONG_M}",
            ),
            "num_benches": (self.num_benches >= 0, ">= 0"),
            "num_obstacles": (self.num_obstacles >= 0, ">= 0"),
            "navigable_margin_m": (
                0.0 <= self.navigable_margin_m < MIN_SIDEWALK_M,
                f"in [0, {MIN_SIDEWALK_M})",
            ),
        }
        for name, (ok, expected) in rules.items():
            if not ok:
                value = getattr(self, name)
                raise S2EError(f"StreetConfig.{name} = {value!r}; expected {expected}")

    @property
    def sidewalk_width_m(self) -> float:
        """Width of each sidewalk (kerb to facade)."""
        return (self.width_m - self.road_width_m) / 2


# --------------------------------------------------------------------------- materials
# A material maps Gaussian centres (M, 3) world and surface coords (M, 2) (metres along the
# primitive's u and v edges) to colours (M, 3) in [0, 1].
Material = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def _noisy(rgb: tuple[float, float, float], amount: float = COLOUR_NOISE) -> Material:
    base = np.asarray(rgb)

    def colour(pos: np.ndarray, uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shade = rng.normal(0.0, amount, size=(len(pos), 1))
        return base + shade + rng.normal(0.0, amount / 3, size=(len(pos), 3))

    return colour


def _tile_hash(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer cell (vectorised)."""
    h = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFFFF) / 65536.0


@dataclass(frozen=True)
class _RoadMarkings:
    """Where the road is painted (world metres)."""

    road_width_m: float
    crossing_x_m: float
    line_width_m: float = 0.15
    edge_inset_m: float = 0.35
    dash_period_m: float = 6.0
    dash_length_m: float = 3.0
    crossing_length_m: float = 3.0
    stripe_period_m: float = 1.0

    def painted(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        half_line = self.line_width_m / 2
        in_crossing = np.abs(x - self.crossing_x_m) < self.crossing_length_m / 2
        centre = (np.abs(y) < half_line) & (np.mod(x, self.dash_period_m) < self.dash_length_m)
        edge = np.abs(np.abs(y) - (self.road_width_m / 2 - self.edge_inset_m)) < half_line
        stripes = in_crossing & (
            np.mod(y + self.road_width_m / 2, self.stripe_period_m) < self.stripe_period_m / 2
        )
        return (centre & ~in_crossing) | edge | stripes


def _asphalt(markings: _RoadMarkings, waves: np.ndarray) -> Material:
    """Grey asphalt with low-frequency patches (``waves``: (W, 4) kx, ky, phase, amp)."""

    def colour(pos: np.ndarray, uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x, y = pos[:, 0], pos[:, 1]
        patches = np.sum(
            waves[:, 3] * np.sin(np.outer(x, waves[:, 0]) + np.outer(y, waves[:, 1]) + waves[:, 2]),
            axis=1,
        )
        grey = ASPHALT_GREY + patches + rng.normal(0.0, ASPHALT_GRAIN, len(pos))
        rgb = grey[:, None] * ASPHALT_TINT
        paint = markings.painted(x, y)
        rgb[paint] = PAINT_GREY + rng.normal(0.0, COLOUR_NOISE, (int(paint.sum()), 1))
        return rgb

    return colour


def _paving(tile_m: float = 0.5, grout_m: float = 0.04) -> Material:
    """Square paving slabs with per-slab shade and darker grout lines."""

    def colour(pos: np.ndarray, uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gx, gy = pos[:, 0] / tile_m, pos[:, 1] / tile_m
        lo, hi = PAVING_GREY
        shade = lo + (hi - lo) * _tile_hash(np.floor(gx), np.floor(gy))
        grout = (np.mod(gx, 1.0) < grout_m / tile_m) | (np.mod(gy, 1.0) < grout_m / tile_m)
        shade = np.where(grout, GROUT_GREY, shade) + rng.normal(0.0, COLOUR_NOISE, len(pos))
        return shade[:, None] * PAVING_TINT

    return colour


@dataclass(frozen=True)
class _Facade:
    """A building front: wall colour, window grid and a ground-floor shop front."""

    wall_rgb: tuple[float, float, float]
    lit_seed: int
    floor_height_m: float = 3.0
    bay_width_m: float = 2.5
    window_width_m: float = 1.2
    window_bottom_m: float = 0.9
    window_top_m: float = 2.3
    shop_width_m: float = 2.0
    shop_bottom_m: float = 0.4
    shop_top_m: float = 2.6
    sill_m: float = 0.1

    def colour(self, pos: np.ndarray, uv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s, t = uv[:, 0], uv[:, 1]
        floor = np.floor(t / self.floor_height_m)
        bay = np.floor(s / self.bay_width_m)
        ds = np.abs(np.mod(s, self.bay_width_m) - self.bay_width_m / 2)
        dt = np.mod(t, self.floor_height_m)
        ground = floor == 0
        half_w = np.where(ground, self.shop_width_m, self.window_width_m) / 2
        bottom = np.where(ground, self.shop_bottom_m, self.window_bottom_m)
        top = np.where(ground, self.shop_top_m, self.window_top_m)
        window = (ds < half_w) & (dt > bottom) & (dt < top)
        sill = (ds < half_w + self.sill_m) & (dt > bottom - self.sill_m) & (dt <= bottom)
        rgb = np.asarray(self.wall_rgb) + rng.normal(0.0, COLOUR_NOISE, (len(pos), 1))
        lit = _tile_hash(bay + self.lit_seed, floor) < LIT_WINDOW_FRACTION
        glass = np.where(lit[:, None], LIT_GLASS_RGB, GLASS_RGB)
        glass = glass + GLASS_VARIATION * _tile_hash(bay, floor + self.lit_seed)[:, None]
        rgb = np.where(window[:, None], glass, rgb)
        return np.where(sill[:, None], np.asarray(SILL_RGB), rgb)


# -------------------------------------------------------------------------- primitives
@dataclass
class _Parts:
    """Gaussians of one primitive: centres, body->world rotations, std devs, colour, opacity."""

    means: np.ndarray  # (M, 3) world metres
    rotmats: np.ndarray  # (M, 3, 3) or (3, 3) shared
    scales: np.ndarray  # (M, 3) metres
    rgb: np.ndarray  # (M, 3) in [0, 1]
    opacity: float


@dataclass(frozen=True)
class _Patch:
    """A rectangle ``origin + a*u + b*v``, a in [0, lu], b in [0, lv] (u, v orthonormal)."""

    origin: tuple[float, float, float]
    u: tuple[float, float, float]
    v: tuple[float, float, float]
    lu: float
    lv: float
    material: Material

    def cells(self, spacing: float) -> tuple[int, int]:
        def n(length: float) -> int:
            return max(MIN_CELLS_PER_EDGE, math.ceil(length / spacing))

        return n(self.lu), n(self.lv)

    def count(self, spacing: float) -> int:
        nu, nv = self.cells(spacing)
        return nu * nv

    def area(self) -> float:
        return self.lu * self.lv

    def sample(self, spacing: float, rng: np.random.Generator) -> _Parts:
        nu, nv = self.cells(spacing)
        du, dv = self.lu / nu, self.lv / nv
        a, b = np.meshgrid((np.arange(nu) + 0.5) * du, (np.arange(nv) + 0.5) * dv, indexing="ij")
        a = a.ravel() + rng.uniform(-JITTER_PER_CELL, JITTER_PER_CELL, a.size) * du
        b = b.ravel() + rng.uniform(-JITTER_PER_CELL, JITTER_PER_CELL, b.size) * dv
        u, v = np.asarray(self.u, float), np.asarray(self.v, float)
        means = np.asarray(self.origin) + np.outer(a, u) + np.outer(b, v)
        su, sv = SIGMA_PER_CELL * du, SIGMA_PER_CELL * dv
        scales = np.tile([su, sv, THICKNESS_PER_SIGMA * min(su, sv)], (len(means), 1))
        rot = np.stack([u, v, np.cross(u, v)], axis=-1)
        uv = np.stack([a, b], axis=-1)
        return _Parts(means, rot, scales, self.material(means, uv, rng), SURFACE_OPACITY)


@dataclass(frozen=True)
class _Cylinder:
    """An open vertical cylinder surface (pole, trunk, bin) from ``base`` up ``height``."""

    base: tuple[float, float, float]
    radius: float
    height: float
    material: Material

    def cells(self, spacing: float) -> tuple[int, int]:
        around = max(MIN_CELLS_AROUND, math.ceil(2 * math.pi * self.radius / spacing))
        return around, max(MIN_CELLS_PER_EDGE, math.ceil(self.height / spacing))

    def count(self, spacing: float) -> int:
        na, nz = self.cells(spacing)
        return na * nz

    def area(self) -> float:
        return 2 * math.pi * self.radius * self.height

    def sample(self, spacing: float, rng: np.random.Generator) -> _Parts:
        na, nz = self.cells(spacing)
        dtheta, dz = 2 * math.pi / na, self.height / nz
        theta, z = np.meshgrid(
            (np.arange(na) + 0.5) * dtheta, (np.arange(nz) + 0.5) * dz, indexing="ij"
        )
        theta = theta.ravel() + rng.uniform(-JITTER_PER_CELL, JITTER_PER_CELL, theta.size) * dtheta
        z = z.ravel()
        radial = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], axis=-1)
        tangent = np.stack([-np.sin(theta), np.cos(theta), np.zeros_like(theta)], axis=-1)
        up = np.broadcast_to([0.0, 0.0, 1.0], radial.shape)
        means = np.asarray(self.base) + self.radius * radial + z[:, None] * up
        su, sv = SIGMA_PER_CELL * self.radius * dtheta, SIGMA_PER_CELL * dz
        scales = np.tile([su, sv, THICKNESS_PER_SIGMA * min(su, sv)], (len(means), 1))
        rot = np.stack([tangent, up, radial], axis=-1)
        uv = np.stack([theta * self.radius, z], axis=-1)
        return _Parts(means, rot, scales, self.material(means, uv, rng), SURFACE_OPACITY)


@dataclass(frozen=True)
class _Blobs:
    """Isotropic blobs filling the outer shell of an ellipsoid (tree crowns, lamp heads).

    The material gets the blobs' unit directions' x-y as surface coordinates.
    """

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    material: Material

    def area(self) -> float:
        a, b, c = self.radii  # Knud Thomsen's approximation of an ellipsoid's surface
        p = 1.6075
        return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)

    def count(self, spacing: float) -> int:
        return max(MIN_CELLS_AROUND, math.ceil(self.area() / spacing**2))

    def sample(self, spacing: float, rng: np.random.Generator) -> _Parts:
        n = self.count(spacing)
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        depth = 1.0 - BLOB_SHELL_DEPTH * rng.uniform(size=(n, 1))
        means = np.asarray(self.centre) + d * depth * np.asarray(self.radii)
        spread = rng.uniform(-BLOB_SIGMA_SPREAD, BLOB_SIGMA_SPREAD, size=(n, 1))
        sigma = BLOB_SIGMA_PER_CELL * spacing * (1.0 + spread)
        return _Parts(
            means,
            np.eye(3),
            np.tile(sigma, (1, 3)),
            self.material(means, d[:, :2], rng),
            BLOB_OPACITY,
        )


_Primitive = _Patch | _Cylinder | _Blobs


def _box(
    centre_xy: tuple[float, float],
    z0: float,
    size: tuple[float, float, float],
    yaw: float,
    material: Material,
    bottom: bool = False,
) -> list[_Patch]:
    """Faces of a box standing at height ``z0`` (size: along-yaw, across, height)."""
    sx, sy, sz = size
    c, s = math.cos(yaw), math.sin(yaw)
    ex, ey, ez = np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array([0.0, 0.0, 1.0])
    o = np.array([centre_xy[0], centre_xy[1], z0]) - ex * sx / 2 - ey * sy / 2
    faces = [
        (o + ez * sz, ex, ey, sx, sy),  # top
        (o, ex, ez, sx, sz),  # -y side
        (o + ey * sy + ex * sx, -ex, ez, sx, sz),  # +y side
        (o + ex * sx, ey, ez, sy, sz),  # +x side
        (o + ey * sy, -ey, ez, sy, sz),  # -x side
    ]
    if bottom:
        faces.append((o + ey * sy, ex, -ey, sx, sy))
    return [_Patch(tuple(f[0]), tuple(f[1]), tuple(f[2]), f[3], f[4], material) for f in faces]


# ------------------------------------------------------------------------------ layout
# Street furniture dimensions (metres; (min, max) pairs are drawn uniformly per item) and
# colours (linear RGB in [0, 1]).
KERB_STONE_WIDTH_M = 0.25
LAMP_KERB_OFFSET_M = 0.5
LAMP_FIRST_M = 2.0
LAMP_POLE_RADIUS_M = 0.07
LAMP_POLE_HEIGHT_M = 4.5
LAMP_ARM_LENGTH_M = 1.0
LAMP_ARM_SECTION_M = (0.1, 0.08)
LAMP_HEAD_RADII_M = (0.25, 0.2, 0.08)
TREE_KERB_OFFSET_M = 1.6
TREE_TRUNK_RADIUS_M = (0.1, 0.18)
TREE_TRUNK_HEIGHT_M = (2.4, 3.2)
TREE_CROWN_RADIUS_M = (1.2, 1.9)
TREE_CROWN_FLATTENING = 0.85  # vertical / horizontal crown radius
TREE_CROWN_LIFT = 1.0  # crown centre above the trunk top, in vertical crown radii: the
# crown starts at the trunk top (>= 2.4 m), above a robot's collision height band
TREE_LEAF_RGB_SPREAD = 0.04  # per-tree std of the leaf colour
BENCH_FACADE_OFFSET_M = 1.2
BENCH_LENGTH_M = 1.6
BENCH_SEAT_HEIGHT_M = 0.45
BENCH_SEAT_SIZE_M = (0.45, 0.05)  # depth, thickness
BENCH_BACK_SIZE_M = (0.05, 0.4)  # thickness, height
BENCH_LEG_SIZE_M = (0.06, 0.4)  # width, depth
BENCH_END_CLEARANCE_M = 3.0
BOX_SIZE_M = (0.4, 1.0)
BIN_RADIUS_M = (0.25, 0.35)
BIN_HEIGHT_M = (0.8, 1.1)
BOX_FRACTION = 0.6  # share of obstacles that are boxes (the rest are bins)
OBSTACLE_CLEARANCE_M = 0.3  # free gap around each obstacle
KERB_CLEARANCE_M = 0.8  # obstacles keep this far from the kerb edge
WALL_CLEARANCE_M = 1.0  # and this far inside the navigable bounds
ASPHALT_WAVES = 6  # low-frequency sinusoids that give the asphalt its patches
ASPHALT_WAVE_NUMBER = 0.6  # std of their wave vectors, rad / m
ASPHALT_WAVE_AMPLITUDE = (0.005, 0.02)
KERB_RGB = (0.66, 0.65, 0.62)
POLE_RGB = (0.2, 0.22, 0.21)
LAMP_RGB = (1.0, 0.93, 0.75)
BARK_RGB = (0.33, 0.22, 0.13)
LEAF_RGB = (0.2, 0.42, 0.16)
WOOD_RGB = (0.5, 0.33, 0.18)
METAL_RGB = (0.15, 0.15, 0.16)
BIN_RGBS = ((0.15, 0.35, 0.2), (0.35, 0.36, 0.37))
CRATE_RGBS = ((0.62, 0.46, 0.28), (0.55, 0.40, 0.25), (0.50, 0.52, 0.55), (0.72, 0.30, 0.18))
FACADE_RGBS = (
    (0.62, 0.32, 0.24), (0.80, 0.74, 0.62), (0.55, 0.56, 0.58), (0.86, 0.80, 0.55),
    (0.90, 0.88, 0.84), (0.45, 0.52, 0.60), (0.70, 0.50, 0.40), (0.60, 0.66, 0.52),
)  # fmt: skip
EX, EY, EZ = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
SIDES = (-1.0, 1.0)  # -y side, +y side of the street


@dataclass
class _Layout:
    primitives: list[_Primitive] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)  # placed items, recorded in meta

    def is_free(self, xy: np.ndarray, radius: float) -> bool:
        """No recorded object's disc overlaps the disc ``(xy, radius)``."""
        return all(np.hypot(*(xy - o["xy"])) > radius + o["radius_m"] for o in self.objects)

    def record(self, kind: str, xy: np.ndarray, radius: float) -> None:
        self.objects.append({"kind": kind, "xy": np.asarray(xy, float), "radius_m": radius})


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _ground(cfg: StreetConfig, rng: np.random.Generator, out: _Layout) -> None:
    """Road with markings, kerb faces, kerb stones and paved sidewalks."""
    L, W, R, k = cfg.length_m, cfg.width_m, cfg.road_width_m, cfg.kerb_height_m
    waves = np.column_stack(
        [
            rng.normal(0.0, ASPHALT_WAVE_NUMBER, (ASPHALT_WAVES, 2)),
            rng.uniform(0.0, 2 * math.pi, ASPHALT_WAVES),
            rng.uniform(*ASPHALT_WAVE_AMPLITUDE, ASPHALT_WAVES),
        ]
    )
    markings = _RoadMarkings(R, crossing_x_m=float(rng.uniform(-L / 4, L / 4)))
    prims = out.primitives
    prims.append(_Patch((-L / 2, -R / 2, 0.0), EX, EY, L, R, _asphalt(markings, waves)))
    paving, kerb = _paving(), _noisy(KERB_RGB)
    walk_m = cfg.sidewalk_width_m - KERB_STONE_WIDTH_M
    for side in SIDES:
        edge = side * R / 2
        prims.append(_Patch((-L / 2, edge, 0.0), EX, EZ, L, k, kerb))
        stone_y = edge if side > 0 else edge - KERB_STONE_WIDTH_M
        prims.append(_Patch((-L / 2, stone_y, k), EX, EY, L, KERB_STONE_WIDTH_M, kerb))
        walk_y = edge + KERB_STONE_WIDTH_M if side > 0 else -W / 2
        prims.append(_Patch((-L / 2, walk_y, k), EX, EY, L, walk_m, paving))


def _buildings(cfg: StreetConfig, rng: np.random.Generator, out: _Layout) -> None:
    """Facades of random width, height and colour along both sides and across both ends."""
    L, W, k = cfg.length_m, cfg.width_m, cfg.kerb_height_m

    def facade() -> Material:
        rgb = FACADE_RGBS[int(rng.integers(len(FACADE_RGBS)))]
        return _Facade(rgb, int(rng.integers(1 << 16))).colour

    for side in SIDES:
        x = -L / 2
        while x < L / 2:
            width = min(_uniform(rng, cfg.building_width_m), L / 2 - x)
            height = _uniform(rng, cfg.building_height_m)
            # u runs along the facade as seen from the street, v up from the sidewalk.
            if side < 0:
                out.primitives.append(_Patch((x, -W / 2, k), EX, EZ, width, height, facade()))
            else:
                origin = (x + width, W / 2, k)
                out.primitives.append(_Patch(origin, (-1.0, 0.0, 0.0), EZ, width, height, facade()))
            x += width
    for end in SIDES:
        height = _uniform(rng, cfg.building_height_m)
        origin, u = (end * L / 2, end * W / 2, 0.0), (0.0, -end, 0.0)
        out.primitives.append(_Patch(origin, u, EZ, W, height, facade()))


def _lamps_and_trees(cfg: StreetConfig, rng: np.random.Generator, out: _Layout) -> None:
    """Lamp posts near the kerb (staggered between sides) and trees between them."""
    L, R, k = cfg.length_m, cfg.road_width_m, cfg.kerb_height_m
    pole, lamp = _noisy(POLE_RGB, COLOUR_NOISE / 2), _noisy(LAMP_RGB, COLOUR_NOISE / 2)
    bark = _noisy(BARK_RGB)
    arm = LAMP_ARM_LENGTH_M
    for side in SIDES:
        y = side * (R / 2 + LAMP_KERB_OFFSET_M)
        first = -L / 2 + LAMP_FIRST_M + (0.0 if side < 0 else cfg.lamp_spacing_m / 2)
        for x in np.arange(first, L / 2 - LAMP_FIRST_M / 2, cfg.lamp_spacing_m):
            top = k + LAMP_POLE_HEIGHT_M
            out.primitives.append(
                _Cylinder((x, y, k), LAMP_POLE_RADIUS_M, LAMP_POLE_HEIGHT_M, pole)
            )
            arm_size = (LAMP_ARM_SECTION_M[0], arm, LAMP_ARM_SECTION_M[1])
            out.primitives.extend(
                _box(
                    (x, y - side * arm / 2),
                    top - LAMP_ARM_SECTION_M[1],
                    arm_size,
                    0.0,
                    pole,
                    bottom=True,
                )
            )
            head = (x, y - side * arm, top - LAMP_ARM_SECTION_M[1] - LAMP_HEAD_RADII_M[2])
            out.primitives.append(_Blobs(head, LAMP_HEAD_RADII_M, lamp))
            out.record("lamp_post", np.array([x, y]), LAMP_POLE_RADIUS_M)
        tree_y = side * (R / 2 + TREE_KERB_OFFSET_M)
        first = -L / 2 + cfg.tree_spacing_m / 2 + (0.0 if side < 0 else cfg.tree_spacing_m / 4)
        for x in np.arange(first, L / 2 - LAMP_FIRST_M, cfg.tree_spacing_m):
            trunk_r = _uniform(rng, TREE_TRUNK_RADIUS_M)
            trunk_h = _uniform(rng, TREE_TRUNK_HEIGHT_M)
            crown = rng.uniform(*TREE_CROWN_RADIUS_M, 3) * [1.0, 1.0, TREE_CROWN_FLATTENING]
            leaf_rgb = np.asarray(LEAF_RGB) + rng.normal(0.0, TREE_LEAF_RGB_SPREAD, 3)
            leaves = _noisy(tuple(leaf_rgb), 2 * COLOUR_NOISE)
            # The trunk reaches into the crown, whose centre sits above the trunk top.
            out.primitives.append(_Cylinder((x, tree_y, k), trunk_r, trunk_h + crown[2] / 2, bark))
            centre = (x, tree_y, k + trunk_h + crown[2] * TREE_CROWN_LIFT)
            out.primitives.append(_Blobs(centre, tuple(crown), leaves))
            out.record("tree", np.array([x, tree_y]), trunk_r)


def _benches(cfg: StreetConfig, rng: np.random.Generator, out: _Layout) -> None:
    """Benches against the facades, alternating sides, facing the road."""
    L, W, k = cfg.length_m, cfg.width_m, cfg.kerb_height_m
    wood, metal = _noisy(WOOD_RGB), _noisy(METAL_RGB, COLOUR_NOISE / 2)
    seat_depth, seat_thick = BENCH_SEAT_SIZE_M
    back_thick, back_h = BENCH_BACK_SIZE_M
    leg_w, leg_depth = BENCH_LEG_SIZE_M
    for bench in range(cfg.num_benches):
        side = SIDES[bench % 2]
        for _ in range(MAX_PLACEMENT_TRIES):
            x = rng.uniform(-L / 2 + BENCH_END_CLEARANCE_M, L / 2 - BENCH_END_CLEARANCE_M)
            xy = np.array([x, side * (W / 2 - BENCH_FACADE_OFFSET_M)])
            if out.is_free(xy, BENCH_LENGTH_M / 2 + OBSTACLE_CLEARANCE_M):
                break
        else:
            continue
        yaw = 0.0 if side < 0 else math.pi
        seat_z = k + BENCH_SEAT_HEIGHT_M
        back_xy = xy + np.array([0.0, side * (seat_depth - back_thick) / 2])
        seat = (BENCH_LENGTH_M, seat_depth, seat_thick)
        out.primitives.extend(_box(tuple(xy), seat_z, seat, yaw, wood, bottom=True))
        back = (BENCH_LENGTH_M, back_thick, back_h)
        out.primitives.extend(_box(tuple(back_xy), seat_z + seat_thick, back, yaw, wood, True))
        for end in SIDES:
            leg_xy = (xy[0] + end * (BENCH_LENGTH_M - 2 * leg_w) / 2, xy[1])
            leg = (leg_w, leg_depth, BENCH_SEAT_HEIGHT_M)
            out.primitives.extend(_box(leg_xy, k, leg, yaw, metal))
        out.record("bench", xy, BENCH_LENGTH_M / 2)


def _obstacles(cfg: StreetConfig, rng: np.random.Generator, out: _Layout) -> None:
    """Boxes and bins on the road and the sidewalks, apart from each other and the kerb."""
    R, k = cfg.road_width_m, cfg.kerb_height_m
    nav_x = cfg.length_m / 2 - cfg.navigable_margin_m - WALL_CLEARANCE_M
    nav_y = cfg.width_m / 2 - cfg.navigable_margin_m - WALL_CLEARANCE_M
    placed = 0
    for _ in range(MAX_PLACEMENT_TRIES * cfg.num_obstacles):
        if placed == cfg.num_obstacles:
            break
        xy = np.array([rng.uniform(-nav_x, nav_x), rng.uniform(-nav_y, nav_y)])
        if abs(abs(xy[1]) - R / 2) < KERB_CLEARANCE_M:
            continue
        z0 = 0.0 if abs(xy[1]) < R / 2 else k
        if rng.uniform() < BOX_FRACTION:
            size = rng.uniform(*BOX_SIZE_M, 3)
            radius = float(np.hypot(size[0], size[1]) / 2)
            if not out.is_free(xy, radius + OBSTACLE_CLEARANCE_M):
                continue
            colour = _noisy(CRATE_RGBS[int(rng.integers(len(CRATE_RGBS)))])
            yaw = float(rng.uniform(0, math.pi))
            out.primitives.extend(_box(tuple(xy), z0, tuple(size), yaw, colour))
            out.record("box", xy, radius)
        else:
            radius, height = _uniform(rng, BIN_RADIUS_M), _uniform(rng, BIN_HEIGHT_M)
            if not out.is_free(xy, radius + OBSTACLE_CLEARANCE_M):
                continue
            colour = _noisy(BIN_RGBS[int(rng.integers(len(BIN_RGBS)))])
            out.primitives.append(_Cylinder((xy[0], xy[1], z0), radius, height, colour))
            lid = (xy[0] - radius, xy[1] - radius, z0 + height)
            out.primitives.append(_Patch(lid, EX, EY, 2 * radius, 2 * radius, colour))
            out.record("bin", xy, radius)
        placed += 1


def _layout(cfg: StreetConfig, rng: np.random.Generator) -> _Layout:
    out = _Layout()
    for build in (_ground, _buildings, _lamps_and_trees, _benches, _obstacles):
        build(cfg, rng, out)
    return out


def _solve_spacing(prims: list[_Primitive], target: int) -> float:
    """Grid spacing (metres) at which the primitives hold about ``target`` Gaussians."""
    spacing = math.sqrt(sum(p.area() for p in prims) / target)
    for _ in range(SPACING_ITERATIONS):
        count = sum(p.count(spacing) for p in prims)
        spacing = max(MIN_SPACING_M, spacing * math.sqrt(count / target))
    return spacing


def generate_street_scene(
    seed: int, config: StreetConfig | None = None, **overrides: object
) -> tuple[GaussianScene, SceneInfo]:
    """Build a street scene of Gaussians in the robot world (z up, road surface at z = 0).

    Args:
        seed: layout and texture seed; the same seed gives bit-identical arrays.
        config: parameters (defaults: a 60 m x 20 m street, ~100k Gaussians, SH degree 0).
        **overrides: fields of :class:`StreetConfig` to replace, e.g. ``num_gaussians=10**6``.

    Returns:
        ``(scene, info)``: the scene (float32 arrays; ``scene.info is info``;
        ``scene.meta["generator"]`` holds the seed, config and the placed objects with their
        x-y centre and radius) and its :class:`SceneInfo` (floor height 0, navigable bounds
        the street between the facades less ``navigable_margin_m``).
    """
    try:
        cfg = dataclasses.replace(config or StreetConfig(), **overrides)
    except TypeError as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(StreetConfig))
        raise S2EError(f"generate_street_scene: {exc}; StreetConfig fields: {fields}") from None
    cfg.validate()
    rng = np.random.default_rng(seed)
    layout = _layout(cfg, rng)
    spacing = _solve_spacing(layout.primitives, cfg.num_gaussians)
    parts = [
        p.sample(spacing, np.random.default_rng([seed, i])) for i, p in enumerate(layout.primitives)
    ]
    margin = cfg.navigable_margin_m
    half_l, half_w = cfg.length_m / 2 - margin, cfg.width_m / 2 - margin
    info = SceneInfo(
        name=f"street_seed{seed}",
        description=(
            f"procedural street {cfg.length_m:g} m x {cfg.width_m:g} m, road "
            f"{cfg.road_width_m:g} m, kerb {cfg.kerb_height_m:g} m, seed {seed}"
        ),
        floor_height_m=0.0,
        navigable_bounds_m=((-half_l, -half_w), (half_l, half_w)),
        sh_degree=cfg.sh_degree,
    )
    objects = [{**o, "xy": [float(v) for v in o["xy"]]} for o in layout.objects]
    meta = {
        "generator": {
            "name": "street",
            "seed": int(seed),
            "config": dataclasses.asdict(cfg),
            "spacing_m": spacing,
            "objects": objects,
        }
    }
    return _assemble(parts, cfg.sh_degree, meta, info), info


def box_object(
    centre_xy: tuple[float, float],
    z0: float,
    size: tuple[float, float, float],
    yaw: float,
    rgb: tuple[float, float, float],
    spacing_m: float,
    seed: int,
) -> GaussianScene:
    """A box of Gaussians (an obstacle: four sides and a top) standing at height ``z0``.

    Built exactly like the generator's boxes, for obstacles added per episode.

    Args:
        centre_xy: footprint centre (world metres).
        z0: world z of the box's base.
        size: ``(along, across, height)`` metres; ``along`` points along ``yaw``.
        yaw: heading about world +z (radians).
        rgb: base colour in [0, 1] (with slight noise per Gaussian).
        spacing_m: distance between neighbouring Gaussians on the faces (> 0).
        seed: colour-noise and jitter seed.

    Returns:
        A degree-0 world-frame :class:`GaussianScene`, ``meta`` naming the object and size.
    """
    if not (spacing_m > 0 and all(v > 0 for v in size)):
        raise S2EError(f"box_object: spacing_m and size must be > 0, got {spacing_m}, {size}")
    rng = np.random.default_rng(seed)
    faces = _box(centre_xy, z0, size, yaw, _noisy(rgb))
    meta = {"object": "box", "size": [float(v) for v in size]}
    return _assemble([f.sample(spacing_m, rng) for f in faces], 0, meta, None)


def _assemble(
    parts: list[_Parts], sh_degree: int, meta: dict, info: SceneInfo | None
) -> GaussianScene:
    """One :class:`GaussianScene` (SH degree ``sh_degree``, zero above 0) from sampled parts."""
    counts = [len(p.means) for p in parts]
    quats = np.concatenate(
        [
            np.repeat(rotmats_to_quats(p.rotmats)[None], n, axis=0)
            if p.rotmats.ndim == 2
            else rotmats_to_quats(p.rotmats)
            for p, n in zip(parts, counts, strict=True)
        ]
    )
    rgb = np.clip(np.concatenate([p.rgb for p in parts]), 0.0, 1.0)
    sh = np.zeros((len(rgb), (sh_degree + 1) ** 2, 3), dtype=np.float32)
    sh[:, 0] = rgb_to_sh0(rgb)
    return GaussianScene(
        means=np.concatenate([p.means for p in parts]),
        quats=quats,
        scales=np.concatenate([p.scales for p in parts]),
        opacities=np.repeat([p.opacity for p in parts], counts),
        sh=sh,
        meta=meta,
        info=info,
    )
