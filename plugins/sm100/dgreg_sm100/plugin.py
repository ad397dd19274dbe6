"""Hook implementations of the sm100 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, hookimpl

ARCH = "sm100a"


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Blackwell (sm_100a: B200, GB200)",
        "status": "no kernels yet: calls on sm100a fall back to the torch reference",
    }


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm100a only
    # Kernel families are registered here as they land; none are offered in 0.1.0.
