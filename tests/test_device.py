from __future__ import annotations

import pytest
import torch

from dgreg import config
from dgreg.device import CPU, Device, current_device, detect, preset
from dgreg.errors import InvalidArgumentError


def test_presets_and_arch_tags():
    assert preset("h100").arch == "sm90a" and preset("h100").sm_count == 132
    assert preset("sm90a") == preset("h100")
    assert preset("B200").sm_count == 148 and preset("sm100a").arch == "sm100a"
    assert preset("cpu") is CPU
    custom = preset("sm120a")
    assert custom.arch == "sm120a" and custom.simulated and custom.family == "sm120"


@pytest.mark.parametrize("bad", ["hopper", "sm9", "SM_90", ""])
def test_bad_arch_override_names_the_variable(bad):
    with pytest.raises(InvalidArgumentError, match="'DGREG_ARCH' must be"):
        preset(bad)


def test_device_validates_its_arch():
    with pytest.raises(ValueError, match="'arch' must be 'cpu' or an arch tag"):
        Device(arch="hopper")


def test_override_beats_detection():
    with config.scope(DGREG_ARCH="sm90a"):
        assert current_device().arch == "sm90a"
        assert current_device(torch.device("cpu")).arch == "sm90a"
    assert current_device(torch.device("cpu")) is CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_detect_without_gpu_is_cpu():
    assert detect() is CPU and not CPU.is_gpu and repr(CPU) == "Device(cpu)"


@pytest.mark.gpu
def test_detect_on_gpu_reports_real_limits():
    device = detect()
    assert device.is_gpu and not device.simulated
    assert device.sm_count > 0 and device.smem_per_block > 48 * 1024 and device.l2_bytes > 0
    major, minor = torch.cuda.get_device_capability()
    assert device.capability == (major, minor)
    if major == 9:
        assert device.arch == "sm90a"
