"""dgreg plugin for NVIDIA Hopper (sm_90a: H100, H200, H800)."""

__version__ = "0.1.0"
