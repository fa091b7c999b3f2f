"""Pedestrians as Gaussian bodies, posed each frame so the robot's camera sees them.

A body is a fixed template of anisotropic Gaussians (legs, hips, torso, arms, head) in the
agent's local frame (x forward, y left, z up, feet at z = 0). Each frame, the legs and arms
swing about the hip/shoulder with the agent's gait phase, and the template is placed at the
agent's floor position and heading. The posing runs in one compiled loop over agents and
Gaussians (:func:`pose_kernel`), cheap enough to run for every rendered frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.sh import rgb_to_sh0

# Body part labels of the template's Gaussians.
PART_LEFT_LEG, PART_RIGHT_LEG, PART_LEFT_ARM, PART_RIGHT_ARM, PART_BODY = range(5)


@dataclass(frozen=True)
class BodyConfig:
    """Proportions (m) and appearance of the Gaussian pedestrian template."""

    height_m: float = 1.72
    hip_height_m: float = 0.88
    shoulder_height_m: float = 1.42
    hip_half_width_m: float = 0.1
    shoulder_half_width_m: float = 0.2
    arm_length_m: float = 0.62
    limb_sigma_m: float = 0.055
    gaussians_per_limb: int = 6
    torso_gaussians: int = 10
    leg_swing_rad: float = 0.45
    arm_swing_rad: float = 0.35
    opacity: float = 0.98


@dataclass(frozen=True)
class BodyTemplate:
    """Template Gaussians in the agent frame (``M`` of them).

    Attributes:
        offsets: ``(M, 3)`` centres relative to the swing pivot of their part (m).
        pivots: ``(M, 3)`` pivot (hip or shoulder, or origin for the rigid body) in the agent
            frame (m).
        scales: ``(M, 3)`` linear standard deviations (m).
        parts: ``(M,)`` int part label (``PART_*``).
        material: ``(M,)`` int: 0 skin, 1 shirt, 2 trousers, 3 hair/shoes (dark).
    """

    offsets: np.ndarray
    pivots: np.ndarray
    scales: np.ndarray
    parts: np.ndarray
    material: np.ndarray


def build_template(cfg: BodyConfig | None = None) -> BodyTemplate:
    """Build the Gaussian template of a walking person (about 50 Gaussians)."""
    cfg = cfg or BodyConfig()
    offsets, pivots, scales, parts, material = [], [], [], [], []

    def limb(pivot, length, part, mat_upper, mat_lower, sigma):
        ts = (np.arange(cfg.gaussians_per_limb) + 0.5) / cfg.gaussians_per_limb
        for t in ts:
            offsets.append([0.0, 0.0, -t * length])
            pivots.append(pivot)
            scales.append([sigma, sigma, 0.6 * length / cfg.gaussians_per_limb + sigma])
            parts.append(part)
            material.append(mat_upper if t < 0.85 else mat_lower)

    leg = cfg.hip_height_m
    for side, part in ((1.0, PART_LEFT_LEG), (-1.0, PART_RIGHT_LEG)):
        limb([0.0, side * cfg.hip_half_width_m, cfg.hip_height_m], leg, part, 2, 3,
             cfg.limb_sigma_m * 1.2)
    for side, part in ((1.0, PART_LEFT_ARM), (-1.0, PART_RIGHT_ARM)):
        pivot = [0.0, side * cfg.shoulder_half_width_m, cfg.shoulder_height_m]
        limb(pivot, cfg.arm_length_m, part, 1, 0, cfg.limb_sigma_m)
    # Torso: a column of flattened blobs from the hips to the shoulders.
    zs = np.linspace(cfg.hip_height_m + 0.05, cfg.shoulder_height_m - 0.02, cfg.torso_gaussians)
    for i, z in enumerate(zs):
        for y in (-0.08, 0.08):
            offsets.append([0.0, y, z])
            pivots.append([0.0, 0.0, 0.0])
            scales.append([0.09, 0.09, 0.06])
            parts.append(PART_BODY)
            material.append(2 if i < 2 else 1)
    # Neck and head (hair on the back of the head).
    head_z = cfg.height_m - 0.11
    for off, sc, mat in (
        ([0.0, 0.0, cfg.shoulder_height_m + 0.06], [0.045, 0.045, 0.05], 0),
        ([0.01, 0.0, head_z], [0.085, 0.075, 0.1], 0),
        ([-0.03, 0.0, head_z + 0.03], [0.075, 0.08, 0.08], 3),
    ):
        offsets.append(off)
        pivots.append([0.0, 0.0, 0.0])
        scales.append(sc)
        parts.append(PART_BODY)
        material.append(mat)
    return BodyTemplate(
        offsets=np.asarray(offsets, float), pivots=np.asarray(pivots, float),
        scales=np.asarray(scales, float), parts=np.asarray(parts, int),
        material=np.asarray(material, int))


def sample_palettes(num_agents: int, rng: np.random.Generator) -> np.ndarray:
    """Per-agent colours ``(N, 4, 3)`` in [0,1] of the materials skin, shirt, trousers, dark."""
    skin_tones = np.array([[0.95, 0.8, 0.68], [0.85, 0.65, 0.5], [0.62, 0.45, 0.32],
                           [0.4, 0.28, 0.2]])
    skin = skin_tones[rng.integers(0, len(skin_tones), num_agents)]
    shirt = rng.uniform(0.05, 0.95, (num_agents, 3))
    trousers = rng.uniform(0.05, 0.45, (num_agents, 3))
    dark = np.tile([[0.08, 0.07, 0.06]], (num_agents, 1))
    return np.stack([skin, shirt, trousers, dark], axis=1)


def part_swing_rad(cfg: BodyConfig | None = None) -> np.ndarray:
    """``(5,)`` float64 signed swing amplitude (rad) of each body part, indexed by ``PART_*``.

    Legs swing by ``+-leg_swing_rad`` (the left leg forward at phase pi/2), each arm opposite
    to the leg of its side by ``arm_swing_rad``, the rigid body not at all.
    """
    cfg = cfg or BodyConfig()
    swing = np.zeros(PART_BODY + 1)
    swing[PART_LEFT_LEG], swing[PART_RIGHT_LEG] = cfg.leg_swing_rad, -cfg.leg_swing_rad
    swing[PART_LEFT_ARM], swing[PART_RIGHT_ARM] = -cfg.arm_swing_rad, cfg.arm_swing_rad
    return swing


@njit(cache=True)
def pose_kernel(
    offsets: np.ndarray,
    pivots: np.ndarray,
    parts: np.ndarray,
    part_swing: np.ndarray,
    positions: np.ndarray,
    headings: np.ndarray,
    gait_phase: np.ndarray,
    floor_height_m: float,
    means: np.ndarray,
    quats: np.ndarray,
) -> None:
    """Pose ``N`` bodies of ``M`` template Gaussians (row ``a * M + m``), float64 maths.

    Gaussian ``m`` of agent ``a`` swings by ``s = sin(phase_a) * part_swing[parts[m]]`` about
    the local y axis through its pivot (a positive angle moves a downward limb's end forward,
    +x), then the body turns by the heading about world z and moves to the agent's floor
    position. Its rotation is the quaternion product ``yaw(heading) * rot_y(-s)``, written
    out in full. The sines and cosines of ``s`` are evaluated once per agent and part.

    Args:
        offsets: ``(M, 3)`` float64 centres relative to their pivot (agent frame, m).
        pivots: ``(M, 3)`` float64 swing pivots (agent frame, m).
        parts: ``(M,)`` int64 part label (``PART_*``) of each Gaussian.
        part_swing: ``(P,)`` float64 signed swing amplitude per part (rad),
            :func:`part_swing_rad`.
        positions: ``(N, 2)`` float64 floor positions (world xy, m).
        headings: ``(N,)`` float64 yaw about world z (rad).
        gait_phase: ``(N,)`` float64 gait phase (rad).
        floor_height_m: world z of the floor (m).
        means: ``(N * M, 3)`` float32 output world centres (m).
        quats: ``(N * M, 4)`` float32 output unit quaternions ``w x y z`` (body -> world).
    """
    m_count = offsets.shape[0]
    n_parts = part_swing.shape[0]
    trig = np.empty((n_parts, 4))  # cos s, sin s, cos(-s/2), sin(-s/2) per part
    for a in range(positions.shape[0]):
        stride = np.sin(gait_phase[a])
        for p in range(n_parts):
            swing = stride * part_swing[p]
            trig[p, 0] = np.cos(swing)
            trig[p, 1] = np.sin(swing)
            trig[p, 2] = np.cos(-0.5 * swing)
            trig[p, 3] = np.sin(-0.5 * swing)
        cy = np.cos(headings[a])
        sy = np.sin(headings[a])
        half_yaw = 0.5 * headings[a]
        w1, x1, y1, z1 = np.cos(half_yaw), 0.0, 0.0, np.sin(half_yaw)
        for m in range(m_count):
            row = a * m_count + m
            p = parts[m]
            cs, ss = trig[p, 0], trig[p, 1]
            ox, oy, oz = offsets[m, 0], offsets[m, 1], offsets[m, 2]
            lx = (cs * ox - ss * oz) + pivots[m, 0]
            ly = oy + pivots[m, 1]
            lz = (ss * ox + cs * oz) + pivots[m, 2]
            means[row, 0] = np.float32(cy * lx - sy * ly + positions[a, 0])
            means[row, 1] = np.float32(sy * lx + cy * ly + positions[a, 1])
            means[row, 2] = np.float32(lz + floor_height_m)
            w2, x2, y2, z2 = trig[p, 2], 0.0, trig[p, 3], 0.0
            quats[row, 0] = np.float32(w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2)
            quats[row, 1] = np.float32(w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2)
            quats[row, 2] = np.float32(w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2)
            quats[row, 3] = np.float32(w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2)


def pose_bodies(
    template: BodyTemplate,
    positions: np.ndarray,
    headings: np.ndarray,
    gait_phase: np.ndarray,
    palettes: np.ndarray,
    floor_height_m: float = 0.0,
    cfg: BodyConfig | None = None,
) -> GaussianScene:
    """Gaussians of ``N`` posed pedestrians (``N * M`` of them) in the world frame.

    Args:
        template: the body template (``M`` Gaussians).
        positions: ``(N, 2)`` floor positions (world xy, m).
        headings: ``(N,)`` yaw (rad) about world z.
        gait_phase: ``(N,)`` gait phase (rad); legs swing as ``sin(phase)``, arms opposite.
        palettes: ``(N, 4, 3)`` material colours from :func:`sample_palettes`.
        floor_height_m: world z of the floor.
        cfg: the proportions used to build ``template`` (for the swing amplitudes).

    Returns:
        A degree-0 :class:`GaussianScene` with ``N * M`` Gaussians, agent-major (rows
        ``a * M : (a + 1) * M`` are agent ``a``'s template Gaussians in order).
    """
    cfg = cfg or BodyConfig()
    n, m = len(positions), len(template.parts)
    means = np.empty((n * m, 3), dtype=np.float32)
    quats = np.empty((n * m, 4), dtype=np.float32)
    pose_kernel(
        np.ascontiguousarray(template.offsets, dtype=np.float64),
        np.ascontiguousarray(template.pivots, dtype=np.float64),
        np.ascontiguousarray(template.parts, dtype=np.int64),
        part_swing_rad(cfg),
        np.ascontiguousarray(positions, dtype=np.float64).reshape(n, 2),
        np.ascontiguousarray(headings, dtype=np.float64).reshape(n),
        np.ascontiguousarray(gait_phase, dtype=np.float64).reshape(n),
        float(floor_height_m), means, quats,
    )  # fmt: skip
    return GaussianScene(
        means=means,
        quats=quats,
        scales=np.tile(template.scales.astype(np.float32), (n, 1)),
        opacities=np.full(n * m, cfg.opacity, dtype=np.float32),
        sh=rgb_to_sh0(palettes)[:, template.material].reshape(n * m, 1, 3),
        meta={"source": "pedestrians"},
    )
