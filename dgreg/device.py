"""The device a call runs on: detection from torch, presets, and the ``DGREG_ARCH`` override.

Detection imports torch lazily and only when asked, so ``import dgreg`` stays CUDA-free.
"""

from __future__ import annotations

import functools
import re

import attrs

from dgreg import config
from dgreg.errors import InvalidArgumentError

__all__ = ["CPU", "PRESETS", "Device", "current_device", "detect", "preset"]

_ARCH_RE = re.compile(r"^(cpu|sm\d{2,3}[a-z]?)$")


def _arch_tag(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not _ARCH_RE.match(value):
        raise ValueError(f"'arch' must be 'cpu' or an arch tag such as 'sm90a' (got {value!r})")


@attrs.frozen(repr=False)
class Device:
    """What resolution and heuristics need to know about a GPU (or the CPU).

    ``simulated`` marks a device that was not detected (``DGREG_ARCH`` or an explicit value):
    resolution and code generation work for it, running kernels on it does not.
    """

    arch: str = attrs.field(validator=_arch_tag)
    name: str = "unknown"
    sm_count: int = 0
    smem_per_block: int = 0  # opt-in maximum dynamic shared memory per block, bytes
    l2_bytes: int = 0
    capability: tuple[int, int] = (0, 0)
    index: int | None = None  # torch CUDA device index when detected
    simulated: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.arch != "cpu"

    @property
    def family(self) -> str:
        """``sm90a`` -> ``sm90``: the arch without its feature suffix."""
        return self.arch.rstrip("abf") if self.arch != "cpu" else "cpu"

    def __repr__(self) -> str:
        if not self.is_gpu:
            return "Device(cpu)"
        sim = ", simulated" if self.simulated else ""
        return f"Device({self.arch}, {self.name}, {self.sm_count} SMs{sim})"


CPU = Device(arch="cpu", name="cpu")

#: Known GPUs by arch tag; ``DGREG_ARCH=sm90a`` simulates the first one listed for that tag.
PRESETS: dict[str, Device] = {
    "h100": Device("sm90a", "NVIDIA H100 80GB HBM3", 132, 232448, 50 * 2**20, (9, 0), simulated=True),
    "h200": Device("sm90a", "NVIDIA H200", 132, 232448, 60 * 2**20, (9, 0), simulated=True),
    "h800": Device("sm90a", "NVIDIA H800", 132, 232448, 50 * 2**20, (9, 0), simulated=True),
    "b200": Device("sm100a", "NVIDIA B200", 148, 232448, 126 * 2**20, (10, 0), simulated=True),
}
_PRESET_FOR_ARCH = {"sm90a": "h100", "sm90": "h100", "sm100a": "b200", "sm100": "b200"}


def preset(name_or_arch: str, argument: str = "DGREG_ARCH") -> Device:
    """A simulated device: a preset name (``h100``, ``b200``), a known arch, or a bare tag.

    ``argument`` names where the value came from, for the error message.
    """
    key = name_or_arch.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    if key in _PRESET_FOR_ARCH:
        return PRESETS[_PRESET_FOR_ARCH[key]]
    if key == "cpu":
        return CPU
    if not _ARCH_RE.match(key):
        raise InvalidArgumentError(
            argument, f"'cpu', a preset ({', '.join(PRESETS)}) or an arch tag like 'sm120a'",
            repr(name_or_arch))
    # A plugin's own arch: resolution works, limits are unknown to the core.
    return Device(arch=key, name=f"simulated {key}", simulated=True)


def _arch_from_capability(major: int, minor: int) -> str:
    # Hopper and Blackwell kernels need the arch-specific ("a") feature set.
    suffix = "a" if major >= 9 else ""
    return f"sm{major}{minor}{suffix}"


@functools.cache
def _detect_cuda(index: int) -> Device:
    import torch

    props = torch.cuda.get_device_properties(index)
    smem = getattr(props, "shared_memory_per_block_optin", 0)
    l2 = getattr(props, "L2_cache_size", 0)
    return Device(
        arch=_arch_from_capability(props.major, props.minor),
        name=props.name,
        sm_count=props.multi_processor_count,
        smem_per_block=int(smem),
        l2_bytes=int(l2),
        capability=(props.major, props.minor),
        index=index,
    )


def detect(index: int | None = None) -> Device:
    """The real device: the CUDA device ``index`` (default: current), or CPU if there is no GPU."""
    import torch

    if not torch.cuda.is_available():
        return CPU
    if index is None:
        index = torch.cuda.current_device()
    return _detect_cuda(index)


def current_device(tensor_device: object = None) -> Device:
    """The device resolution uses: ``DGREG_ARCH`` if set, else the tensors' device, else detect()."""
    override = config.get("DGREG_ARCH")
    if override:
        return preset(override)
    if tensor_device is not None:
        kind = getattr(tensor_device, "type", str(tensor_device))
        if kind == "cpu":
            return CPU
        if kind == "cuda":
            return detect(getattr(tensor_device, "index", None))
    return detect()
