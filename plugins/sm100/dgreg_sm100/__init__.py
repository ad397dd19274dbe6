"""dgreg plugin for NVIDIA Blackwell (sm_100a: B200, GB200)."""

__version__ = "0.1.0"
