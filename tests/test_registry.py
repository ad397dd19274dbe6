from __future__ import annotations

import sys
import textwrap
from importlib import metadata

import pytest
from plugin_helpers import ToyPlugin, python_candidate

from dgreg import API_VERSION, Candidate, config, hookimpl
from dgreg.device import preset
from dgreg.errors import DuplicateKernelError
from dgreg.registry import PluginWarning, Registry

H100 = preset("h100")


def test_reference_plugin_is_always_loaded():
    registry = Registry(autoload=False)
    info = registry.find("reference")
    assert info is not None and info.status == "loaded" and info.builtin
    ids = [c.kernel_id for c in registry.candidates(H100)]
    assert ids == ["reference.torch"]
    assert registry.candidates(H100)[0].plugin == "reference"


class MisspeltHook:
    @hookimpl
    def dgreg_api_version(self):
        return API_VERSION

    @hookimpl
    def dgreg_register_kernel(self, register, device):  # missing "s"
        pass


class NoVersion:
    @hookimpl
    def dgreg_register_kernels(self, register, device):
        pass


class WrongVersion:
    @hookimpl
    def dgreg_api_version(self):
        return API_VERSION + 41


class BadArgument:
    @hookimpl
    def dgreg_api_version(self):
        return API_VERSION

    @hookimpl
    def dgreg_register_kernels(self, register, device, extra):
        pass


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (MisspeltHook(), "dgreg_register_kernel"),
        (NoVersion(), "does not implement dgreg_api_version"),
        (WrongVersion(), f"targets dgreg plugin API {API_VERSION + 41}"),
        (BadArgument(), "extra"),
    ],
)
def test_broken_plugins_are_skipped_with_a_named_warning(plugin, reason):
    registry = Registry(autoload=False)
    with pytest.warns(PluginWarning, match="dgreg plugin 'broken' skipped") as record:
        info = registry.add(plugin, "broken")
    assert info.status == "failed"
    assert reason in info.reason
    assert reason in str(record[0].message)
    assert registry.pm.get_plugin("broken") is None
    assert [c.kernel_id for c in registry.candidates(H100)] == ["reference.torch"]


def test_plugin_raising_in_register_is_disabled_and_others_survive():
    class Raises(ToyPlugin):
        @hookimpl
        def dgreg_register_kernels(self, register, device):
            raise RuntimeError("boom")

    registry = Registry(autoload=False)
    registry.add(Raises(), "raises")
    registry.add(ToyPlugin(python_candidate("good.k")), "good")
    with pytest.warns(PluginWarning, match="'raises' skipped: dgreg_register_kernels raised RuntimeError: boom"):
        ids = sorted(c.kernel_id for c in registry.candidates(H100))
    assert ids == ["good.k", "reference.torch"]
    assert registry.find("raises").status == "failed"


def test_register_rejects_non_candidates():
    class Sloppy(ToyPlugin):
        @hookimpl
        def dgreg_register_kernels(self, register, device):
            register({"kernel_id": "x"})

    registry = Registry(autoload=False)
    registry.add(Sloppy(), "sloppy")
    with pytest.warns(PluginWarning, match="register\\(\\) takes a dgreg.Candidate"):
        registry.candidates(H100)


def test_duplicate_kernel_ids_are_a_named_error():
    registry = Registry(autoload=False)
    registry.add(ToyPlugin(python_candidate("same.k")), "one", distribution="dist-one")
    registry.add(ToyPlugin(python_candidate("same.k")), "two", distribution="dist-two")
    with pytest.raises(DuplicateKernelError) as exc:
        registry.candidates(H100)
    message = str(exc.value)
    assert "'same.k'" in message and "'one' (dist-one)" in message and "'two' (dist-two)" in message


def test_candidates_are_stamped_and_cached_per_device():
    plugin = ToyPlugin(python_candidate("toy.k"), arch="sm90a")
    registry = Registry(autoload=False)
    registry.add(plugin, "toy", distribution="dgreg-toy", version="1.2")
    (toy,) = [c for c in registry.candidates(H100) if c.kernel_id == "toy.k"]
    assert (toy.plugin, toy.distribution, toy.version) == ("toy", "dgreg-toy", "1.2")
    registry.candidates(H100)
    assert plugin.register_calls == 1
    assert [c.kernel_id for c in registry.candidates(preset("b200"))] == ["reference.torch"]
    assert plugin.register_calls == 2


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "good_plugin.py").write_text(textwrap.dedent("""
        from dgreg import API_VERSION, hookimpl

        @hookimpl
        def dgreg_api_version():
            return API_VERSION
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("good_plugin", None)


def _eps(*pairs):
    return [metadata.EntryPoint(name, value, "dgreg.plugins") for name, value in pairs]


def test_entry_points_load_and_broken_imports_are_isolated(plugin_module):
    registry = Registry(autoload=False)
    with pytest.warns(PluginWarning, match="'broken' skipped: import of 'no_such_module' failed"):
        registry.load_entry_points(_eps(("good", "good_plugin"), ("broken", "no_such_module")))
    assert registry.find("good").status == "loaded"
    assert registry.find("broken").status == "failed"
    assert "ModuleNotFoundError" in registry.find("broken").reason


def test_allow_and_block_lists(plugin_module):
    eps = _eps(("good", "good_plugin"), ("other", "good_plugin"))
    registry = Registry(autoload=False, allow=["good"])
    registry.load_entry_points(eps)
    assert registry.find("good").status == "loaded"
    assert registry.find("other").status == "disabled"
    assert "DGREG_PLUGINS" in registry.find("other").reason
    registry = Registry(autoload=False, block=["good"])
    registry.load_entry_points(eps[:1])
    assert registry.find("good").status == "disabled"
    assert "DGREG_DISABLE_PLUGINS" in registry.find("good").reason


def test_installed_arch_plugins_are_discovered():
    with config.scope(DGREG_PLUGINS=None):
        registry = Registry()
    for name, arch in (("sm90", "sm90a"), ("sm100", "sm100a")):
        info = registry.find(name)
        if info is None:
            pytest.skip(f"dgreg-{name} is not installed in this environment")
        assert info.status == "loaded", info.reason
        assert info.distribution == f"dgreg-{name}"
        assert info.archs == (arch,)
        assert info.api_version == API_VERSION
        assert "dgreg_register_kernels" in info.hooks
    assert registry.find("dgreg-sm90") is registry.find("sm90")


def test_trace_prints_hook_calls(capsys):
    registry = Registry(autoload=False, trace=True)
    registry.candidates(H100)
    assert "dgreg_register_kernels" in capsys.readouterr().err


def test_plugins_offer_only_for_their_arch_and_candidate_validation():
    with pytest.raises(ValueError, match="'kernel_id' must be dotted lower-case"):
        Candidate("Bad Id", supports=lambda s, d: None)
    with pytest.raises(TypeError):
        Candidate("ok.id", supports="not callable")
