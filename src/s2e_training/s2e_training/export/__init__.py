"""ONNX export of the S2E policy (with the ONNX contract) and torch/ONNX Runtime parity."""

from s2e_policy.cli import lazy_attributes

# torch-backed: imported on first use, so `s2e` start-up stays free of torch.
__getattr__ = lazy_attributes(__name__, {
    "ExportError": "onnx_export", "ExportSource": "onnx_export", "PolicyGraph": "onnx_export",
    "build_contract": "onnx_export", "export_network": "onnx_export",
    "export_onnx": "onnx_export", "load_export_source": "onnx_export",
    "random_inputs": "onnx_export", "max_abs_errors": "parity", "open_session": "parity",
})

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
