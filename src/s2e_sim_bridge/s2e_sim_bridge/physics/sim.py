"""MuJoCo physics for one robot among a scene's static obstacles and kinematic pedestrians.

The model is built per scene from an :class:`~s2e_sim_bridge.world.occupancy.OccupancyMap`:
occupied cells merged into static boxes, four walls around the navigable bounds, the robot
as a planar body (slide x, slide y, hinge yaw; a vertical cylinder of the footprint radius)
driven by MuJoCo velocity actuators, and pedestrians as mocap capsules whose positions the
caller sets. Physics z is height above the scene floor.

Each substep the body-frame command is clipped to the embodiment's limits, passed through
a first-order lag (``velocity_lag_s``) whose rate is capped by the acceleration limits, and
the resulting reference is tracked by the actuators (deadbeat in free space; against an
obstacle the actuators push with at most their force cap and the contact stops the body).
A diff-drive base gets zero lateral reference and, after every substep, its lateral body
velocity is projected out (ideal non-slipping wheels), so it never moves sideways even when
turning or pushed. Contacts are counted per event: a contact with the static world, or with one
pedestrian, begins when the bodies touch and ends when the clearance exceeds
``contact_release_m`` again (hysteresis, so resting against a wall is one event).

Only ``mj_step`` itself stays in Python's substep loop: the reference filter and deadbeat
control, the diff-drive projection and the contact bookkeeping over MuJoCo's contact list are
small numba kernels, and the pedestrians' mocap positions of all substeps are computed once
per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numba
import numpy as np

from s2e_policy.embodiment import Embodiment
from s2e_policy.errors import S2EError
from s2e_sim_bridge.physics.boxes import boxes_in_world, merge_occupied_cells
from s2e_sim_bridge.world.occupancy import OccupancyMap

# A substep count is accepted when dt / timestep is this close to an integer.
_SUBSTEP_TOLERANCE = 1e-6
# Parked (inactive) pedestrians sit this many pedestrian heights below the floor.
_PARKED_DEPTH_HEIGHTS = 10.0


class PhysicsError(S2EError):
    """Bad physics input: invalid config, command, step length or start pose."""


@dataclass(frozen=True)
class PhysicsConfig:
    """Physics engine settings (units in the names).

    Attributes:
        timestep_s: physics substep (default 100 Hz: a planar base at <= 2 m/s moves
            <= 2 cm per substep, within the robot geom's ``contact_release_m`` margin
            band plus MuJoCo's soft-contact penetration; 20 substeps per 5 Hz control step).
        drive_force_margin: actuator force cap as a multiple of the force needed to
            accelerate and turn at the limits, ``mass * (max accel + max speed * max yaw
            rate)`` (torque: ``inertia * max angular accel``); how hard the base can push
            against a wall or a pedestrian.
        obstacle_height_m: height of static boxes and boundary walls above the floor.
        boundary_wall_thickness_m: thickness of the walls around the navigable bounds.
        body_height_m: height of the robot's collision cylinder (from the floor).
        pedestrian_radius_m: radius of a pedestrian capsule.
        pedestrian_height_m: height of a pedestrian capsule.
        contact_release_m: clearance beyond which a touching contact is over.
    """

    timestep_s: float = 0.01
    drive_force_margin: float = 2.0
    obstacle_height_m: float = 1.5
    boundary_wall_thickness_m: float = 0.5
    body_height_m: float = 0.5
    pedestrian_radius_m: float = 0.25
    pedestrian_height_m: float = 1.7
    contact_release_m: float = 0.01

    def __post_init__(self) -> None:
        for name in (
            "timestep_s",
            "drive_force_margin",
            "obstacle_height_m",
            "boundary_wall_thickness_m",
            "body_height_m",
            "pedestrian_radius_m",
            "pedestrian_height_m",
            "contact_release_m",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise PhysicsError(f"PhysicsConfig.{name} must be a finite number > 0, got {value}")
        if self.pedestrian_height_m < 2 * self.pedestrian_radius_m:
            raise PhysicsError(
                "PhysicsConfig.pedestrian_height_m must be >= 2 * pedestrian_radius_m"
            )


@dataclass(frozen=True)
class StepResult:
    """State after one :meth:`NavPhysics.step` (world frame: z up, metres, radians).

    Attributes:
        time_s: simulated time since reset.
        pose: ``(3,)`` float64 ``(x, y, yaw)``, yaw wrapped to ``[-pi, pi)``.
        body_velocity: ``(3,)`` float64 ``(vx, vy, wz)`` in base_link (forward, left, yaw rate).
        static_contact_events: contacts with the static world that began during this step.
        pedestrian_contact_events: pedestrian contacts that began during this step.
        in_static_contact: touching the static world at the end of the step.
        pedestrians_in_contact: ``(P,)`` bool, touching each pedestrian at the end.
    """

    time_s: float
    pose: np.ndarray
    body_velocity: np.ndarray
    static_contact_events: int
    pedestrian_contact_events: int
    in_static_contact: bool
    pedestrians_in_contact: np.ndarray


def _box_xml(name: str | None, centre_xy: np.ndarray, half_xy: np.ndarray,
             half_z: float) -> str:
    """One static box geom of the MJCF; ``name`` None leaves it unnamed.

    The merged occupancy boxes are unnamed: MuJoCo's parser checks every name against the
    others, which took half the parse time of a street's ~370 boxes.
    """
    named = "" if name is None else f'name="{name}" '
    return (
        f'<geom {named}type="box" pos="{centre_xy[0]:.6f} {centre_xy[1]:.6f} '
        f'{half_z:.6f}" size="{half_xy[0]:.6f} {half_xy[1]:.6f} {half_z:.6f}" '
        f'class="static"/>'
    )


def build_mjcf(
    occupancy: OccupancyMap, embodiment: Embodiment, config: PhysicsConfig, num_pedestrians: int = 0
) -> str:
    """MJCF text of the scene: static boxes, boundary walls, the robot and pedestrian capsules.

    Contact filtering: static geoms and pedestrians never collide with each other (both
    ``contype=1, conaffinity=2``); the robot (``contype=2, conaffinity=1``) collides with both.
    """
    radius = embodiment.footprint_radius_m
    mass = embodiment.mass_kg
    inertia_z = 0.5 * mass * radius**2
    h = config.timestep_s
    e = embodiment
    force = (
        config.drive_force_margin
        * mass
        * (e.max_linear_accel_mps2 + max(e.max_linear_mps, e.max_lateral_mps) * e.max_angular_radps)
    )
    torque = config.drive_force_margin * inertia_z * embodiment.max_angular_accel_radps2
    half_z = 0.5 * config.obstacle_height_m
    centres, halves = boxes_in_world(occupancy, merge_occupied_cells(occupancy.grid))
    geoms = [
        _box_xml(None, c, h, half_z) for c, h in zip(centres, halves, strict=True)
    ]
    (x0, y0), (x1, y1) = occupancy.bounds_m
    t = config.boundary_wall_thickness_m
    cx, cy, hx, hy = 0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.5 * (x1 - x0), 0.5 * (y1 - y0)
    walls = {
        "wall_south": ((cx, y0 - 0.5 * t), (hx + t, 0.5 * t)),
        "wall_north": ((cx, y1 + 0.5 * t), (hx + t, 0.5 * t)),
        "wall_west": ((x0 - 0.5 * t, cy), (0.5 * t, hy + t)),
        "wall_east": ((x1 + 0.5 * t, cy), (0.5 * t, hy + t)),
    }
    geoms += [_box_xml(n, np.array(c), np.array(h), half_z) for n, (c, h) in walls.items()]
    pr, ph = config.pedestrian_radius_m, config.pedestrian_height_m
    pedestrians = [
        f'<body name="pedestrian{k}" mocap="true" pos="0 0 0"><geom name="pedestrian{k}" '
        f'type="capsule" fromto="0 0 {pr:.6f} 0 0 {ph - pr:.6f}" size="{pr:.6f}" '
        f'contype="1" conaffinity="2"/></body>'
        for k in range(num_pedestrians)
    ]
    release = config.contact_release_m
    hb = 0.5 * config.body_height_m
    nl = "\n    "
    return f"""<mujoco model="navbench_{embodiment.name}">
  <option timestep="{config.timestep_s}" gravity="0 0 0" integrator="implicitfast"/>
  <default>
    <default class="static"><geom contype="1" conaffinity="2"/></default>
  </default>
  <worldbody>
    {nl.join(geoms)}
    <body name="robot" pos="0 0 0">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <inertial pos="0 0 {hb:.6f}" mass="{mass}" diaginertia="{inertia_z} {inertia_z} {inertia_z}"/>
      <geom name="robot" type="cylinder" size="{radius} {hb:.6f}" pos="0 0 {hb:.6f}"
            contype="2" conaffinity="1" margin="{release}" gap="{release}"/>
    </body>
    {nl.join(pedestrians)}
  </worldbody>
  <actuator>
    <velocity name="vx" joint="x" kv="{mass / h}" forcelimited="true"
              forcerange="{-force} {force}"/>
    <velocity name="vy" joint="y" kv="{mass / h}" forcelimited="true"
              forcerange="{-force} {force}"/>
    <velocity name="wz" joint="yaw" kv="{inertia_z / h}" forcelimited="true"
              forcerange="{-torque} {torque}"/>
  </actuator>
</mujoco>
"""


def _wrap_angle(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class NavPhysics:
    """One robot in one scene: reset, step with body-frame velocity commands, camera pose.

    Args:
        occupancy: the scene's collision world.
        embodiment: limits, footprint, lag, camera mount and gait of the robot.
        config: engine settings (defaults: :class:`PhysicsConfig`).
        num_pedestrians: number of pedestrian capsules in the model.
        floor_z_m: world z of the scene floor (camera poses are reported in world z).
    """

    def __init__(
        self,
        occupancy: OccupancyMap,
        embodiment: Embodiment,
        config: PhysicsConfig | None = None,
        num_pedestrians: int = 0,
        floor_z_m: float = 0.0,
    ) -> None:
        if num_pedestrians < 0:
            raise PhysicsError(f"num_pedestrians must be >= 0, got {num_pedestrians}")
        self.occupancy = occupancy
        self.embodiment = embodiment
        self.config = config or PhysicsConfig()
        self.num_pedestrians = int(num_pedestrians)
        self.floor_z_m = float(floor_z_m)
        self.model = mujoco.MjModel.from_xml_string(
            build_mjcf(occupancy, embodiment, self.config, self.num_pedestrians)
        )
        self.data = mujoco.MjData(self.model)
        self.num_static_boxes = int(self.model.ngeom) - 1 - self.num_pedestrians
        self._robot_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "robot")
        # geom id -> pedestrian index (-1 for static geoms and the robot)
        self._ped_of_geom = np.full(self.model.ngeom, -1, dtype=np.int64)
        for k in range(self.num_pedestrians):
            gid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"pedestrian{k}")
            self._ped_of_geom[gid] = k
        self._is_static_geom = np.ascontiguousarray(self.model.geom_bodyid == 0)
        h = self.config.timestep_s
        self._lag_alpha = 1.0 - math.exp(-h / embodiment.velocity_lag_s)
        e = embodiment
        self._limits = np.array([e.max_linear_mps, e.max_lateral_mps, e.max_angular_radps])
        self._accel_step = h * np.array(
            [e.max_linear_accel_mps2, e.max_linear_accel_mps2, e.max_angular_accel_radps2]
        )
        self._parked_z = -_PARKED_DEPTH_HEIGHTS * self.config.pedestrian_height_m
        # the pedestrians' straight lines over one step: start and displacement (P, 2)
        self._path_start = np.zeros((self.num_pedestrians, 2))
        self._path_delta = np.zeros((self.num_pedestrians, 2))
        self._reset_state(np.zeros(3), None)  # at rest at the origin until reset()

    # ---------------------------------------------------------------- state
    def reset(
        self,
        pose: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
        pedestrian_xy: np.ndarray | None = None,
    ) -> StepResult:
        """Put the robot at rest at ``pose = (x, y, yaw)`` and zero all counters.

        Args:
            pose: world ``(x, y, yaw)`` (metres, radians).
            pedestrian_xy: ``(P, 2)`` world positions; NaN rows (or None) park pedestrians.

        Raises:
            PhysicsError: if the pose is not finite or the robot starts touching an obstacle.
        """
        pose_arr = np.asarray(pose, dtype=np.float64).reshape(3)
        if not np.isfinite(pose_arr).all():
            raise PhysicsError(f"reset pose must be finite (x, y, yaw), got {pose_arr.tolist()}")
        static_dist = self._reset_state(pose_arr, pedestrian_xy)
        if static_dist <= 0.0:
            raise PhysicsError(
                f"reset pose {pose_arr.tolist()} overlaps a static obstacle (robot radius "
                f"{self.embodiment.footprint_radius_m} m)"
            )
        return self._result(0, 0)

    def _reset_state(self, pose: np.ndarray, pedestrian_xy: np.ndarray | None) -> float:
        """Reset data, controller and counters; return the robot-static contact distance."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = pose
        self._reference = np.zeros(3)
        self._ped_xy = self._check_pedestrians(pedestrian_xy)
        # standing still: the straight line from each position to itself (NaN rows park)
        _plan_pedestrian_path(self._ped_xy, self._ped_xy, self._parked_z, self.data.mocap_pos,
                              self._path_start, self._path_delta)
        mujoco.mj_forward(self.model, self.data)
        self.time_s = 0.0
        self.static_contact_count = 0
        self.pedestrian_contact_count = 0
        ped_dist = np.empty(self.num_pedestrians)
        contacts = self.data.contact
        static_dist = _contact_distances(contacts.geom, contacts.dist, self._robot_geom,
                                         self._is_static_geom, self._ped_of_geom, ped_dist)
        self._in_static = False
        self._in_ped = ped_dist <= 0.0
        self._touching = bool(self._in_ped.any())
        return static_dist

    def _check_pedestrians(self, pedestrian_xy: np.ndarray | None) -> np.ndarray:
        if pedestrian_xy is None:
            return np.full((self.num_pedestrians, 2), np.nan)
        xy = np.asarray(pedestrian_xy, dtype=np.float64)
        if xy.shape != (self.num_pedestrians, 2):
            raise PhysicsError(
                f"pedestrian_xy must have shape ({self.num_pedestrians}, 2), got {xy.shape}"
            )
        return xy.copy()

    # ---------------------------------------------------------------- stepping
    def step(
        self,
        cmd: np.ndarray | tuple[float, float, float],
        dt: float,
        pedestrian_xy: np.ndarray | None = None,
    ) -> StepResult:
        """Advance ``dt`` seconds (a whole number of substeps) under one body-frame command.

        Args:
            cmd: ``(vx, vy, wz)`` in base_link (m/s, m/s, rad/s); clipped to the limits,
                ``vy`` ignored for a diff-drive base.
            dt: policy period (seconds), a multiple of ``config.timestep_s``.
            pedestrian_xy: ``(P, 2)`` world pedestrian positions at the end of the step
                (linearly interpolated over the substeps; NaN rows park); None keeps them.

        Raises:
            PhysicsError: non-finite command or ``dt`` not a positive multiple of the timestep.
        """
        command = np.asarray(cmd, dtype=np.float64).reshape(3)
        if not np.isfinite(command).all():
            raise PhysicsError(
                f"velocity command must be finite (vx, vy, wz), got {command.tolist()}"
            )
        ratio = float(dt) / self.config.timestep_s
        substeps = round(ratio)
        if substeps < 1 or abs(ratio - substeps) > _SUBSTEP_TOLERANCE * max(1.0, ratio):
            raise PhysicsError(
                f"dt={dt} s must be a positive multiple of the physics timestep "
                f"{self.config.timestep_s} s"
            )
        target = np.clip(command, -self._limits, self._limits)
        if not self.embodiment.is_holonomic:
            target[1] = 0.0
        start_xy = self._ped_xy
        end_xy = start_xy if pedestrian_xy is None else self._check_pedestrians(pedestrian_xy)
        moving_pedestrians = self.num_pedestrians > 0 and pedestrian_xy is not None
        model, data = self.model, self.data
        qpos, qvel, ctrl = data.qpos, data.qvel, data.ctrl
        reference, accel_step = self._reference, self._accel_step
        alpha, h = self._lag_alpha, self.config.timestep_s
        holonomic = self.embodiment.is_holonomic
        robot, is_static, ped_of_geom = self._robot_geom, self._is_static_geom, self._ped_of_geom
        release = self.config.contact_release_m
        in_static = np.array([self._in_static])
        in_ped = self._in_ped
        touching = self._touching
        counts = np.zeros(2, dtype=np.int64)  # (static, pedestrian) contacts begun this step
        mocap_pos = data.mocap_pos
        # pedestrians move on straight lines, substep k of n at start + (k + 1) / n * delta;
        # one parked (NaN) at either end of the step is parked for the whole step
        path_start, path_delta = self._path_start, self._path_delta
        if moving_pedestrians:
            _plan_pedestrian_path(start_xy, end_xy, self._parked_z, mocap_pos, path_start,
                                  path_delta)
        # Per substep (100-200 Hz per robot) only one kernel call, mj_step and, while the robot
        # is near something, the contact kernel run.
        for k in range(substeps):
            _before_substep(k, substeps, moving_pedestrians, path_start, path_delta, mocap_pos,
                            not holonomic, qpos, qvel, ctrl, reference, target, accel_step,
                            alpha, h)
            mujoco.mj_step(model, data)
            if data.ncon or touching:
                contacts = data.contact
                touching = _advance_contacts(contacts.geom, contacts.dist, robot, is_static,
                                             ped_of_geom, release, in_static, in_ped, counts)
        if not holonomic:
            _project_lateral_velocity(qpos, qvel)  # after the last mj_step
        self._in_static = bool(in_static[0])
        self._touching = touching
        static_events, ped_events = int(counts[0]), int(counts[1])
        self._ped_xy = end_xy
        self.time_s += substeps * self.config.timestep_s
        self.static_contact_count += static_events
        self.pedestrian_contact_count += ped_events
        return self._result(static_events, ped_events)

    def _result(self, static_events: int, ped_events: int) -> StepResult:
        return StepResult(
            time_s=self.time_s,
            pose=self.pose(),
            body_velocity=self.body_velocity(),
            static_contact_events=static_events,
            pedestrian_contact_events=ped_events,
            in_static_contact=self._in_static,
            pedestrians_in_contact=self._in_ped.copy(),
        )

    # ---------------------------------------------------------------- queries
    def pose(self) -> np.ndarray:
        """``(3,)`` float64 world ``(x, y, yaw)``, yaw wrapped to ``[-pi, pi)``."""
        x, y, yaw = self.data.qpos[:3]
        return np.array([x, y, _wrap_angle(float(yaw))])

    def body_velocity(self) -> np.ndarray:
        """``(3,)`` float64 measured ``(vx, vy, wz)`` in base_link (m/s, m/s, rad/s)."""
        vx, vy, wz = self.data.qvel[:3]
        yaw = float(self.data.qpos[2])
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * vx + s * vy, -s * vx + c * vy, wz])

    def gait_activity(self) -> float:
        """Gait amplitude scale in ``[0, 1]``: planar speed over the nominal speed."""
        v = self.body_velocity()
        return min(1.0, math.hypot(v[0], v[1]) / self.embodiment.nominal_speed_mps)

    def camera_pose(self) -> tuple[np.ndarray, float, float, float]:
        """World pose of the RGB camera for the renderer.

        Returns:
            ``(position, yaw, pitch, roll)``: ``(3,)`` float64 world position (z includes
            the floor height and gait bob), yaw about world +z, pitch positive looking down,
            roll about the camera's forward axis (radians).
        """
        x, y, yaw = self.pose()
        mount = self.embodiment.camera
        c, s = math.cos(yaw), math.sin(yaw)
        z = self.floor_z_m + mount.height_m
        roll = 0.0
        gait = self.embodiment.gait
        if gait is not None:
            activity = self.gait_activity()
            phase = 2.0 * math.pi * gait.bob_frequency_hz * self.time_s
            z += activity * gait.bob_amplitude_m * math.sin(phase)
            roll = activity * math.radians(gait.roll_amplitude_deg) * math.sin(0.5 * phase)
        position = np.array([x + c * mount.forward_offset_m, y + s * mount.forward_offset_m, z])
        return position, float(yaw), math.radians(mount.pitch_deg), roll


# ---------------------------------------------------------------- compiled substep pieces
@numba.njit(cache=True, nogil=True)
def _track_reference(qpos, qvel, ctrl, reference, target, accel_step, alpha,
                     h):  # pragma: no cover - compiled
    """Advance the lagged, rate-limited reference and set the deadbeat actuator controls.

    ``reference`` ``(3,)`` body-frame ``(vx, vy, wz)`` moves by ``alpha`` of its distance to
    ``target`` ``(3,)``, at most ``accel_step`` ``(3,)`` per substep (in place). With
    ``kv = inertia / h`` and implicit integration, a control of ``2 * target - v`` reaches the
    target in one substep (unless the force cap binds); the world-frame target uses the yaw
    at the end of the substep.
    """
    for i in range(3):
        step = min(accel_step[i], max(-accel_step[i], alpha * (target[i] - reference[i])))
        reference[i] += step
    rx, ry, rw = reference[0], reference[1], reference[2]
    yaw_next = qpos[2] + rw * h
    c, s = math.cos(yaw_next), math.sin(yaw_next)
    ctrl[0] = 2.0 * (c * rx - s * ry) - qvel[0]
    ctrl[1] = 2.0 * (s * rx + c * ry) - qvel[1]
    ctrl[2] = 2.0 * rw - qvel[2]


@numba.njit(cache=True, nogil=True)
def _project_lateral_velocity(qpos, qvel):  # pragma: no cover - compiled
    """Ideal non-slipping wheels: keep only the world velocity along the heading (in place)."""
    c, s = math.cos(qpos[2]), math.sin(qpos[2])
    forward = c * qvel[0] + s * qvel[1]
    qvel[0] = c * forward
    qvel[1] = s * forward


@numba.njit(cache=True, nogil=True)
def _plan_pedestrian_path(start_xy, end_xy, parked_z, mocap_pos, start,
                          delta):  # pragma: no cover - compiled
    """One step's straight lines of the pedestrians, and their depths (in place).

    ``start_xy`` / ``end_xy`` ``(P, 2)`` world positions at the ends of the step (NaN rows:
    parked). A pedestrian parked at either end is parked for the whole step: its mocap depth
    ``mocap_pos[p, 2]`` is ``parked_z`` and its line is the point 0; the others stand on the
    floor and move from ``start[p]`` by ``delta[p] = end - start``.
    """
    for p in range(start_xy.shape[0]):
        parked = (np.isnan(start_xy[p, 0]) or np.isnan(start_xy[p, 1])
                  or np.isnan(end_xy[p, 0]) or np.isnan(end_xy[p, 1]))
        mocap_pos[p, 2] = parked_z if parked else 0.0
        for c in range(2):
            start[p, c] = 0.0 if parked else start_xy[p, c]
            delta[p, c] = 0.0 if parked else end_xy[p, c] - start_xy[p, c]
            mocap_pos[p, c] = start[p, c]


@numba.njit(cache=True, nogil=True)
def _before_substep(k, substeps, moving, start, delta, mocap_pos, lateral, qpos, qvel, ctrl,
                    reference, target, accel_step, alpha, h):  # pragma: no cover - compiled
    """What runs between two ``mj_step`` calls, in one kernel call.

    For substep ``k`` of ``substeps``: the lateral projection of the previous substep's
    velocity (``lateral``: a differential drive; not before the first, and the step applies
    it after the last), the pedestrians' mocap xy ``start + (k + 1) / substeps * delta``
    (when ``moving``; :func:`_plan_pedestrian_path`) into ``mocap_pos`` ``(P, 3)``, then
    :func:`_track_reference`. The projection touches only the velocity and the contact
    bookkeeping only the contact list, so running it after that bookkeeping changes nothing.
    """
    if lateral and k > 0:
        _project_lateral_velocity(qpos, qvel)
    if moving:
        fraction = np.float64(k + 1) / np.float64(substeps)
        for p in range(start.shape[0]):
            mocap_pos[p, 0] = start[p, 0] + fraction * delta[p, 0]
            mocap_pos[p, 1] = start[p, 1] + fraction * delta[p, 1]
    _track_reference(qpos, qvel, ctrl, reference, target, accel_step, alpha, h)


@numba.njit(cache=True, nogil=True)
def _contact_distances(geom, dist, robot, is_static, ped_of_geom,
                       ped_dist):  # pragma: no cover - compiled
    """Smallest robot-static distance, and robot-pedestrian distances into ``ped_dist``.

    Inputs are MuJoCo's contact list (``geom`` ``(ncon, 2)`` ids, ``dist`` ``(ncon,)`` metres:
    MuJoCo reports robot contacts up to ``contact_release_m`` apart, the robot geom's margin,
    and ``gap`` keeps those inactive; negative distances are penetrations), the robot's geom
    id, ``is_static`` ``(ngeom,)`` bool and ``ped_of_geom`` ``(ngeom,)`` pedestrian index or
    -1. ``ped_dist`` ``(P,)`` is overwritten (``inf``: no contact); returns the static
    distance (``inf``: none).
    """
    ped_dist[:] = np.inf
    static_dist = np.inf
    for c in range(dist.shape[0]):
        g1, g2 = geom[c, 0], geom[c, 1]
        if g1 == robot:
            other = g2
        elif g2 == robot:
            other = g1
        else:
            continue
        if is_static[other]:
            static_dist = min(static_dist, dist[c])
        elif ped_of_geom[other] >= 0:
            k = ped_of_geom[other]
            ped_dist[k] = min(ped_dist[k], dist[c])
    return static_dist


@numba.njit(cache=True, nogil=True)
def _advance_contacts(geom, dist, robot, is_static, ped_of_geom, release, in_static, in_ped,
                      counts):  # pragma: no cover - compiled
    """Advance the touching/released state after one substep (hysteresis of ``release`` m).

    A contact begins when the distance reaches 0 and ends when it exceeds ``release``.
    ``in_static`` ``(1,)`` and ``in_ped`` ``(P,)`` bool are updated in place; contacts begun
    are added to ``counts`` ``(2,)`` int64 ``(static, pedestrian)``. Returns whether the
    robot is still touching anything.
    """
    ped_dist = np.empty(in_ped.shape[0])
    static_dist = _contact_distances(geom, dist, robot, is_static, ped_of_geom, ped_dist)
    if not in_static[0] and static_dist <= 0.0:
        in_static[0] = True
        counts[0] += 1
    elif in_static[0] and static_dist > release:
        in_static[0] = False
    touching = in_static[0]
    for k in range(in_ped.shape[0]):
        began = not in_ped[k] and ped_dist[k] <= 0.0
        in_ped[k] = (in_ped[k] and ped_dist[k] <= release) or began
        if began:
            counts[1] += 1
        touching = touching or in_ped[k]
    return touching
