"""Pedestrians as Gaussian bodies, posed each frame so the robot's camera sees them.

A body is a fixed template of anisotropic Gaussians (legs, hips, torso, arms, head) in the
agent's local frame (x forward, y left, z up, feet at z = 0). Each frame, the legs and arms
swing about the hip/shoulder with the agent's gait phase, and the template is placed at the
agent's floor position and heading. Everything is vectorised over agents and Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2e_sim_bridge.scene.gaussians import GaussianScene
from s2e_sim_bridge.scene.sh import rgb_to_sh0
from s2e_sim_bridge.scene.transform import quat_multiply

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
        A degree-0 :class:`GaussianScene` with ``N * M`` Gaussians.
    """
    cfg = cfg or BodyConfig()
    n, m = len(positions), len(template.parts)
    swing_sign = np.select(
        [template.parts == PART_LEFT_LEG, template.parts == PART_RIGHT_LEG,
         template.parts == PART_LEFT_ARM, template.parts == PART_RIGHT_ARM],
        [cfg.leg_swing_rad, -cfg.leg_swing_rad, -cfg.arm_swing_rad, cfg.arm_swing_rad], 0.0)
    swing = np.sin(np.asarray(gait_phase, float))[:, None] * swing_sign[None, :]  # (N, M)
    # Swing about the local y axis (positive angle moves the limb end forward, i.e. +x).
    cs, ss = np.cos(swing), np.sin(swing)
    ox, oz = template.offsets[None, :, 0], template.offsets[None, :, 2]
    local = np.stack([cs * ox - ss * oz, np.broadcast_to(template.offsets[None, :, 1], (n, m)),
                      ss * ox + cs * oz], axis=-1) + template.pivots[None]
    # Yaw about world z and translation to the agent's position.
    cy, sy = np.cos(headings)[:, None], np.sin(headings)[:, None]
    world = np.stack([cy * local[..., 0] - sy * local[..., 1] + positions[:, 0:1],
                      sy * local[..., 0] + cy * local[..., 1] + positions[:, 1:2],
                      local[..., 2] + floor_height_m], axis=-1)
    # Rotation of each Gaussian: yaw(heading) * rot_y(-swing) (a +x swing of a downward limb
    # is a negative rotation about y).
    half_yaw = 0.5 * np.broadcast_to(np.asarray(headings, float)[:, None], (n, m))
    q_yaw = np.stack([np.cos(half_yaw), np.zeros_like(half_yaw), np.zeros_like(half_yaw),
                      np.sin(half_yaw)], axis=-1)
    q_swing = np.stack([np.cos(-0.5 * swing), np.zeros_like(swing), np.sin(-0.5 * swing),
                        np.zeros_like(swing)], axis=-1)
    quats = quat_multiply(q_yaw, q_swing)
    colours = np.take_along_axis(palettes, np.broadcast_to(template.material[None, :, None],
                                                           (n, m, 3)), axis=1)
    return GaussianScene(
        means=world.reshape(-1, 3),
        quats=quats.reshape(-1, 4),
        scales=np.broadcast_to(template.scales[None], (n, m, 3)).reshape(-1, 3),
        opacities=np.full(n * m, cfg.opacity),
        sh=rgb_to_sh0(colours.reshape(-1, 1, 3)),
        meta={"source": "pedestrians"},
    )
