"""ONNX export of the S2E policy (with the ONNX contract) and torch/ONNX Runtime parity."""

from s2e_training.export.onnx_export import (
    ExportError,
    ExportSource,
    PolicyGraph,
    build_contract,
    export_network,
    export_onnx,
    load_export_source,
    random_inputs,
)
from s2e_training.export.parity import max_abs_errors, open_session

__all__ = [
    "ExportError",
    "ExportSource",
    "PolicyGraph",
    "build_contract",
    "export_network",
    "export_onnx",
    "load_export_source",
    "max_abs_errors",
    "open_session",
    "random_inputs",
]
