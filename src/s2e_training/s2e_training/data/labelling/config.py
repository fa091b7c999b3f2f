"""Parameters of video labelling (:class:`LabelConfig`), loadable from YAML.

Every threshold of the visual odometry and of the quality checks lives here with its unit in
its name; the CLI exposes the common ones and ``--config FILE.yaml`` the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from s2e_policy.errors import S2EError
from s2e_policy.yaml_files import read_yaml

DEFAULT_LABEL_FPS = 5.0
"""Labelled frames per second (one GNM frame per labelled frame)."""

DEFAULT_SPEED_PRIOR_MPS = 1.3
"""Walking speed assumed when nothing gives the scale, m/s."""


@dataclass(frozen=True)
class LabelConfig:
    """How videos become pseudo-labelled trajectories (units in the names).

    Attributes:
        label_fps: labelled frames per second of video time; the visual odometry runs on
            these frames and each becomes one GNM frame.
        speed_prior_mps: assumed speed while moving, m/s (monocular VO has no scale).
        default_hfov_deg: horizontal field of view assumed without a calibration file.
        working_width_px: frames wider than this are downscaled for tracking (pixels).
        max_features: corners detected per frame (Shi-Tomasi).
        feature_quality: Shi-Tomasi quality level (fraction of the best corner's score).
        min_feature_distance_px: minimum distance between corners (working resolution).
        flow_window_px: Lucas-Kanade window side (working resolution).
        flow_pyramid_levels: Lucas-Kanade pyramid levels above the base image.
        max_forward_backward_px: largest forward-backward tracking error kept, pixels.
        ransac_threshold_px: RANSAC inlier distance of the essential matrix, pixels.
        ransac_confidence: RANSAC confidence of the essential matrix.
        min_tracked_fraction: below this fraction of corners surviving tracking, a step
            counts as lost (a scene cut if the image statistics jump too).
        min_inliers: fewer essential-matrix inliers than this drops the step.
        parallax_percentile: percentile of the rotation-compensated flow taken as a step's
            parallax (near points carry the translation; far ones barely move).
        min_parallax_px: parallax below this means the translation is not observable (pure
            rotation or standing still), pixels at the working resolution.
        good_parallax_px: parallax at which a step gets full confidence.
        pure_rotation_min_deg: a low-parallax step rotating more than this is pure rotation;
            less is tiny parallax (standing still).
        blur_ratio: a frame whose Laplacian variance is below this fraction of the running
            median is motion-blurred.
        blur_window_frames: labelled frames in the running median of the blur measure.
        cut_histogram_distance: Bhattacharyya distance between consecutive grey histograms
            above which a lost step is a scene cut.
        min_segment_frames: kept segments have at least this many frames.
        camera_height_m: camera height above the ground, used only to draw the path into
            frames in the report (metres, at the speed-prior scale).
    """

    label_fps: float = DEFAULT_LABEL_FPS
    speed_prior_mps: float = DEFAULT_SPEED_PRIOR_MPS
    default_hfov_deg: float = 70.0
    working_width_px: int = 640
    max_features: int = 600
    feature_quality: float = 0.003
    min_feature_distance_px: float = 5.0
    flow_window_px: int = 21
    flow_pyramid_levels: int = 3
    max_forward_backward_px: float = 1.0
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    min_tracked_fraction: float = 0.25
    min_inliers: int = 20
    parallax_percentile: float = 80.0
    min_parallax_px: float = 1.5
    good_parallax_px: float = 6.0
    pure_rotation_min_deg: float = 2.0
    blur_ratio: float = 0.35
    blur_window_frames: int = 15
    cut_histogram_distance: float = 0.5
    min_segment_frames: int = 10
    camera_height_m: float = 1.5

    def __post_init__(self) -> None:
        for name in ("working_width_px", "max_features", "flow_window_px", "min_inliers",
                     "min_segment_frames", "blur_window_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise S2EError(f"LabelConfig.{name}: expected an integer >= 1, got {value!r}")
        if not isinstance(self.flow_pyramid_levels, int) or self.flow_pyramid_levels < 0:
            raise S2EError(
                f"LabelConfig.flow_pyramid_levels: expected an integer >= 0, "
                f"got {self.flow_pyramid_levels!r}"
            )
        positive = ("label_fps", "speed_prior_mps", "min_feature_distance_px",
                    "max_forward_backward_px", "ransac_threshold_px", "min_parallax_px",
                    "good_parallax_px", "camera_height_m", "cut_histogram_distance")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise S2EError(f"LabelConfig.{name}: expected a positive number, got {value!r}")
        for name in ("feature_quality", "ransac_confidence", "min_tracked_fraction",
                     "blur_ratio"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise S2EError(f"LabelConfig.{name}: expected a number in (0, 1), got {value!r}")
        if not 0 < self.default_hfov_deg < 180:
            raise S2EError(
                f"LabelConfig.default_hfov_deg: expected degrees in (0, 180), got "
                f"{self.default_hfov_deg!r}"
            )
        if not 0 < self.parallax_percentile <= 100:
            raise S2EError(
                f"LabelConfig.parallax_percentile: expected a percentile in (0, 100], got "
                f"{self.parallax_percentile!r}"
            )
        if not 0 <= self.pure_rotation_min_deg < 180:
            raise S2EError(
                f"LabelConfig.pure_rotation_min_deg: expected degrees in [0, 180), got "
                f"{self.pure_rotation_min_deg!r}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "label config") -> LabelConfig:
        """Build from a mapping; unknown keys raise :class:`S2EError` naming them."""
        if not isinstance(values, Mapping):
            raise S2EError(f"{source}: expected a mapping of LabelConfig fields")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise S2EError(
                f"{source}: unknown key(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    @classmethod
    def from_yaml(cls, path: Path) -> LabelConfig:
        """Read a YAML mapping of :class:`LabelConfig` fields (missing fields: defaults)."""
        return cls.from_dict(read_yaml(path, "label config") or {}, str(path))
