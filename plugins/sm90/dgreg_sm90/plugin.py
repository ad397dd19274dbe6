"""Hook implementations of the sm90 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, hookimpl

ARCH = "sm90a"


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Hopper (sm_90a: H100, H200, H800)",
        "status": "no kernels yet: calls on sm90a fall back to the torch reference",
    }


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm90a only
    # Kernel families are registered here as they land; none are offered in 0.1.0.
