"""Reading YAML config files with errors that name the file (one reader for every config).

Embodiments, scene YAMLs, model and training configs all go through these two functions,
then validate the mapping with their own schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from s2e_policy.errors import S2EError


def parse_yaml(text: str, source: str, error: type[S2EError] = S2EError) -> Any:
    """Parse YAML ``text`` (read from ``source``); a syntax error raises ``error``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        message = f"{source}: not valid YAML ({exc})".replace("\n", " ")
        raise error(message) from None


def read_yaml(path: str | Path, what: str, error: type[S2EError] = S2EError) -> Any:
    """Read and parse the YAML file ``path`` holding a ``what`` (e.g. "training config")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from None
    return parse_yaml(text, str(path), error)
