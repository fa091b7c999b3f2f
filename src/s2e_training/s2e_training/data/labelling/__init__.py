"""Video labelling: raw videos -> pseudo-labelled GNM trajectories (``s2e data label-video``).

:func:`label_video` / :func:`label_videos` run monocular visual odometry (OpenCV feature
tracking and essential matrices) or read external poses, split videos at quality failures,
and write one GNM folder per kept segment; :func:`write_report` writes the labels report.
"""

from s2e_training.data.labelling.camera import CameraModel, camera_for_video, read_calibration
from s2e_training.data.labelling.config import LabelConfig
from s2e_training.data.labelling.labeller import (
    SegmentLabel,
    VideoLabels,
    label_video,
    label_videos,
)
from s2e_training.data.labelling.odometry import (
    FrameTracker,
    StepMotion,
    estimate_pitch,
    ground_track,
)
from s2e_training.data.labelling.report import write_report

__all__ = [
    "CameraModel",
    "FrameTracker",
    "LabelConfig",
    "SegmentLabel",
    "StepMotion",
    "VideoLabels",
    "camera_for_video",
    "estimate_pitch",
    "ground_track",
    "label_video",
    "label_videos",
    "read_calibration",
    "write_report",
]
