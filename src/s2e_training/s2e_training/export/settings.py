"""Export defaults and bounds, importable without torch (the CLI reads them at start-up)."""

DEFAULT_OPSET = 17
"""ONNX opset of exported graphs."""
MIN_OPSET = 14
"""Oldest opset accepted (``nn.MultiheadAttention`` and GELU export from here on)."""
MAX_OPSET = 20
"""Newest opset the TorchScript exporter of torch 2.x writes."""
DEFAULT_EMBODIMENT = "wheeled"
"""Embodiment whose limits the contract records when none is given."""
FP32_PARITY_ATOL = 1e-4
"""Largest max abs error (any output, its units) an fp32 export may show against torch."""
FP16_PARITY_ATOL = 5e-2
"""Largest max abs error an fp16 export may show against the float32 torch network."""
