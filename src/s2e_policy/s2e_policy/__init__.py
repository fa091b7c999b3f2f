"""Onboard runtime of the S2E visual navigation policy (numpy + onnxruntime, no torch)."""

__version__ = "0.1.0"
