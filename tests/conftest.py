"""Shared fixtures: every test runs with a clean dgreg state and no auto-loaded plugins."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest

from dgreg import config, dispatch
from dgreg.registry import Registry, reset_registry, set_registry


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_dgreg() -> Iterator[None]:
    """Installed third-party plugins stay out unless a test loads them on purpose."""
    with config.scope(DGREG_PLUGINS=(), DGREG_DISABLE_PLUGINS=(), DGREG_ARCH=None,
                      DGREG_FORCE_PLUGIN=None, DGREG_STRICT=False, DGREG_TRACE_PLUGINS=False):
        reset_registry()
        dispatch.clear_caches()
        dispatch._warned.clear()
        yield
    reset_registry()
    dispatch.clear_caches()
    dispatch._warned.clear()


@pytest.fixture
def make_registry() -> Iterator[Callable[..., Registry]]:
    """``make_registry(("name", plugin_obj), ...)``: a registry of the reference plus these."""

    def make(*plugins: tuple[str, object], **kwargs: object) -> Registry:
        registry = Registry(autoload=False, **kwargs)
        for name, plugin in plugins:
            registry.add(plugin, name, distribution=f"test-{name}", version="0.0")
        set_registry(registry)
        dispatch.clear_caches()
        return registry

    yield make
    reset_registry()


@pytest.fixture
def sm90_gpu() -> Iterator[None]:
    """For tests of the sm90 plugin's kernels: a Hopper GPU, only that plugin, no fallback."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("needs a Hopper (sm_90) GPU")
    with config.scope(DGREG_PLUGINS=("sm90",), DGREG_STRICT=True):
        yield


@pytest.fixture
def no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield
