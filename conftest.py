"""Workspace-wide pytest fixtures: where the shared third-party test data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` beside the repository (real third-party data); skip if absent."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES_DIR}")
    return FIXTURES_DIR


# The EuRoC fixture bag's image and odometry topics, copied into an sqlite3 bag for tests of
# the second rosbag2 storage backend.
EUROC_SQLITE_TOPICS = ("/camera/image_raw", "/camera/image_raw/compressed", "/odom")


@pytest.fixture(scope="session")
def mcap_bag(fixtures_dir: Path) -> Path:
    """The real EuRoC rosbag2 (MCAP storage) from the shared fixtures."""
    return fixtures_dir / "bags" / "euroc_cam1_mcap"


@pytest.fixture(scope="session")
def sqlite_bag(mcap_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same recording's images and odometry rewritten with the sqlite3 storage plugin."""
    from s2e_policy.bags import copy_bag

    dst = tmp_path_factory.mktemp("bags") / "euroc_sqlite3"
    assert copy_bag(mcap_bag, dst, storage="sqlite3", topics=list(EUROC_SQLITE_TOPICS)) \
        == 95 + 95 + 236
    return dst
