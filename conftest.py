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
