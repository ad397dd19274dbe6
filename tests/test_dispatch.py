from __future__ import annotations

import io
import warnings

import pytest
import torch
from plugin_helpers import ToyConfig, ToyPlugin, python_candidate

import dgreg
from dgreg import Candidate, ConfigChoice, FallbackWarning, NoKernelError, PluginError, config
from dgreg.device import preset
from dgreg.spec import Problem, spec_for

FP8 = spec_for("fp8_gemm")
BF16 = spec_for("bf16_gemm")
H100, B200 = preset("h100"), preset("b200")


def _bf16_inputs(m=8, n=16, k=32):
    return torch.randn(m, k, dtype=torch.bfloat16), torch.randn(n, k, dtype=torch.bfloat16)


def test_resolution_ranks_by_priority_and_explains_rejections(make_registry):
    def only_bf16(spec, device):
        return None if spec.op == "bf16_gemm" else f"serves bf16_gemm only (got {spec.op})"

    make_registry(
        ("hopper", ToyPlugin(python_candidate("hopper.fast", priority=200, supports=only_bf16),
                             python_candidate("hopper.slow", priority=100), arch="sm90a")),
        ("blackwell", ToyPlugin(python_candidate("blackwell.k", priority=300), arch="sm100a")),
    )
    res = dgreg.resolve(FP8, H100, Problem(128, 256, 512))
    assert res.chosen.kernel_id == "hopper.slow"
    statuses = {d.candidate.kernel_id: (d.status, d.reason) for d in res.decisions}
    assert statuses["hopper.fast"] == ("rejected", "serves bf16_gemm only (got fp8_gemm)")
    assert statuses["reference.torch"] == ("accepted", None)
    assert "blackwell.k" not in statuses  # offered on sm100a only
    assert [d.candidate.kernel_id for d in res.decisions] == [
        "hopper.slow", "reference.torch", "hopper.fast"]  # chosen, runners-up, rejected
    assert dgreg.resolve(BF16, H100).chosen.kernel_id == "hopper.fast"
    assert dgreg.resolve(FP8, B200).chosen.kernel_id == "blackwell.k"
    text = str(res)
    assert "hopper.fast" in text and "serves bf16_gemm only" in text and "-> hopper.slow" in text


def test_problem_level_rejection(make_registry):
    def small_only(spec, problem):
        return "M > 64 is not served" if problem.m > 64 else None

    make_registry(("toy", ToyPlugin(python_candidate("toy.small", reject=small_only))))
    assert dgreg.resolve(BF16, H100, Problem(64, 8, 8)).chosen.kernel_id == "toy.small"
    res = dgreg.resolve(BF16, H100, Problem(65, 8, 8))
    assert res.chosen.kernel_id == "reference.torch" and res.is_fallback
    assert res.decisions[-1].reason == "M > 64 is not served"


def test_spec_level_answers_are_cached_per_spec_and_device(make_registry):
    calls = []

    def counting(spec, device):
        calls.append((spec, device))

    make_registry(("toy", ToyPlugin(python_candidate("toy.k", supports=counting))))
    for m in (1, 2, 3):
        dgreg.resolve(BF16, H100, Problem(m, 8, 8))
    assert calls == [(BF16, H100)]
    dgreg.resolve(BF16, B200)
    assert len(calls) == 2


def test_heuristic_config_reaches_explain_and_kernel_key(make_registry):
    def pick(candidate, spec, problem, device):
        return ConfigChoice(ToyConfig(64, 112), {"waves": 0.97, "sms": device.sm_count},
                            ((ToyConfig(64, 128), 0.8, "fewer SMs busy"),))

    make_registry(("toy", ToyPlugin(python_candidate("toy.k"), heuristic=pick)))
    res = dgreg.resolve(BF16, H100, Problem(256, 7168, 7168))
    assert res.choice.config == ToyConfig(64, 112)
    assert res.kernel_key.kernel_id == "toy.k" and res.kernel_key.arch == "sm90a"
    text = str(res)
    assert "ToyConfig(block_m=64, block_n=112)" in text and "waves: 0.97" in text
    assert "fewer SMs busy" in text
    assert res.as_dict()["figures"]["sms"] == 132


def test_heuristic_must_return_a_config_choice(make_registry):
    make_registry(("toy", ToyPlugin(python_candidate("toy.k"), heuristic=lambda *a: {"bm": 64})))
    with pytest.raises(PluginError, match=r"dgreg_heuristic must return a dgreg\.ConfigChoice"):
        dgreg.resolve(BF16, H100, Problem(1, 8, 8))


def test_plugin_bug_in_supports_is_a_reason_not_a_crash(make_registry):
    def broken(spec, device):
        raise KeyError("oops")

    make_registry(("toy", ToyPlugin(python_candidate("toy.k", supports=broken))))
    with pytest.warns(UserWarning, match="toy.k raised KeyError"):
        res = dgreg.resolve(BF16, H100)
    reasons = {d.candidate.kernel_id: d.reason for d in res.decisions}
    assert reasons["toy.k"].startswith("plugin error: KeyError")
    assert res.chosen.kernel_id == "reference.torch"


def test_pins(make_registry):
    make_registry(("a", ToyPlugin(python_candidate("a.k", priority=50))),
                  ("b", ToyPlugin(python_candidate("b.k", priority=10))))
    assert dgreg.resolve(BF16, H100).chosen.kernel_id == "a.k"
    assert dgreg.resolve(BF16, H100, plugin="b").chosen.kernel_id == "b.k"
    assert dgreg.resolve(BF16, H100, plugin="test-b").chosen.kernel_id == "b.k"  # distribution name
    with dgreg.use(plugin="b"):
        res = dgreg.resolve(BF16, H100)
        assert res.chosen.kernel_id == "b.k" and res.pin == "b"
        assert dict((d.candidate.kernel_id, d.reason) for d in res.decisions)["a.k"] == \
            "not the pinned plugin 'b'"
    with config.scope(DGREG_FORCE_PLUGIN="reference"):
        assert dgreg.resolve(BF16, H100).chosen.kernel_id == "reference.torch"
    with pytest.raises(NoKernelError, match=r"pinned plugin .nope. is not installed.*a, b, jit, reference"):
        dgreg.resolve(BF16, H100, plugin="nope")


def test_pinned_plugin_that_cannot_serve_is_an_error_not_a_fallback(make_registry):
    make_registry(("a", ToyPlugin(python_candidate("a.k", supports=lambda s, d: "never"))))
    a, b = _bf16_inputs()
    with pytest.raises(NoKernelError, match="no kernel can run") as exc:
        dgreg.gemm(a, b, plugin="a")
    assert "never" in str(exc.value) and "not the pinned plugin 'a'" in str(exc.value)


def test_fallback_warns_once_and_strict_forbids_it():
    a, b = _bf16_inputs()
    with pytest.warns(FallbackWarning, match="no accelerated kernel for bf16_gemm.nt.bf16 on cpu"):
        dgreg.gemm(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dgreg.gemm(a, b)
        dgreg.gemm(*_bf16_inputs(m=9))  # a new shape of the same spec: still warned only once
        dgreg.gemm(a, b, plugin="reference")  # an explicit pin is not a fallback
    with config.scope(DGREG_STRICT=True), pytest.raises(NoKernelError) as exc:
        dgreg.gemm(*_bf16_inputs(m=10))
    assert "DGREG_STRICT=1 forbids" in str(exc.value)
    assert "reference.torch" in str(exc.value)  # the explanation is embedded


def test_cuda_only_candidates_are_rejected_for_cpu_tensors(make_registry):
    seen = []

    def gpu_run(call):
        seen.append(call)

    make_registry(("gpu", ToyPlugin(python_candidate("gpu.k", needs_cuda=True, run=gpu_run))))
    a, b = _bf16_inputs()
    with pytest.warns(FallbackWarning, match="gpu.k: needs CUDA tensors \\(the inputs are on cpu\\)"):
        d = dgreg.gemm(a, b)
    assert not seen
    torch.testing.assert_close(d.float(), a.float() @ b.float().T, rtol=1e-2, atol=1e-2)
    assert dgreg.resolve(BF16, H100).chosen.kernel_id == "gpu.k"  # explain without tensors


def test_simulated_device_cannot_launch_cuda_kernels(make_registry):
    from dgreg.dispatch import resolve

    make_registry(("gpu", ToyPlugin(python_candidate("gpu.k", needs_cuda=True))))
    res = resolve(BF16, H100, Problem(8, 8, 8), tensors_on="cuda")
    reasons = {d.candidate.kernel_id: d.reason for d in res.decisions}
    assert reasons["gpu.k"].startswith("the device is simulated")


def test_jit_candidates_need_a_config_from_their_plugin(make_registry):
    jit = Candidate("toy.jit", supports=lambda s, d: None, priority=100)
    make_registry(("toy", ToyPlugin(jit)))
    assert dgreg.resolve(BF16, H100).chosen.kernel_id == "toy.jit"  # explain without a problem
    with pytest.raises(PluginError, match="gave no config"):
        dgreg.resolve(BF16, H100, Problem(8, 8, 8))


def test_dgreg_arch_simulates_a_device(make_registry):
    make_registry(("b", ToyPlugin(python_candidate("b.k"), arch="sm100a")))
    with config.scope(DGREG_ARCH="sm100a"):
        res = dgreg.explain("fp8_gemm", (128, 4096, 7168), file=None)
    assert res.device == B200 and res.chosen.kernel_id == "b.k"


def test_explain_prints_and_returns(capsys):
    res = dgreg.explain("m_grouped_fp8_gemm_masked", Problem(256, 4096, 7168, 4, expected_m=192),
                        device="h100")
    out = capsys.readouterr().out
    assert out.startswith("dgreg: m_grouped_fp8_gemm_masked.nt.1d2d.bf16 g4m256n4096k7168~m192")
    assert "reference.torch" in out and res.is_fallback
    buf = io.StringIO()
    dgreg.explain(BF16, (8, 8, 8), device="sm90a", file=buf)
    assert "bf16_gemm.nt.bf16 m8n8k8" in buf.getvalue()
    with pytest.raises(TypeError):
        dgreg.explain(BF16, layout="TN")


def test_num_sms_limits_the_device_heuristics_see(make_registry):
    seen = []

    def pick(candidate, spec, problem, device):
        seen.append(device.sm_count)
        return ConfigChoice(ToyConfig(64, 64))

    make_registry(("toy", ToyPlugin(python_candidate("toy.k"), heuristic=pick)))
    with config.scope(DGREG_ARCH="h100"):
        assert dgreg.get_num_sms() == 132
        try:
            dgreg.set_num_sms(100)
            assert dgreg.get_num_sms() == 100
            dgreg.explain(BF16, (8, 8, 8), file=None)
            assert seen == [100]
            with pytest.raises(dgreg.InvalidArgumentError, match="'num_sms' must be at most 132"):
                dgreg.set_num_sms(133)
            with pytest.raises(dgreg.InvalidArgumentError, match="'num_sms' must be a positive int"):
                dgreg.set_num_sms(0)
        finally:
            import dgreg.dispatch as dispatch

            dispatch._num_sms = None


def test_pointer_launcher_packs_once_per_pointers_and_stream(monkeypatch):
    """The launcher the core keeps for a plan whose plugin marks its arguments reusable:
    ``make_call`` and ``pack`` run on the first launch at given data pointers on a given
    stream only; repeats launch the kept array; a plugin's "not reusable" gives no launcher."""
    import ctypes
    from types import SimpleNamespace

    from dgreg import dispatch
    from dgreg.jit import launch as launch_module
    from dgreg.kernel import LaunchSpec

    stream = [3]
    monkeypatch.setattr(launch_module, "raw_stream_getter", lambda: lambda device: stream[0])
    launched, packed, bound = [], [], []

    class Kernel:
        device = 0

        def bind_prepared(self, grid, block, arg_types, *, cluster, shared_mem):
            bound.append((grid, block, arg_types, cluster, shared_mem))
            return (lambda args: ("prepared", args)), \
                (lambda prepared, s: launched.append((prepared, s)))

    def pack(call):
        packed.append(call)
        return (call.x,)

    spec = LaunchSpec(grid=(2, 1, 1), block=(32, 1, 1), pack=pack, arg_types=(ctypes.c_int,),
                      cluster=(2, 1, 1), shared_mem=64, reusable=lambda call: call.x >= 0)
    assert dispatch._pointer_launcher(Kernel(), spec, SimpleNamespace(x=-1)) is None
    launch_at = dispatch._pointer_launcher(Kernel(), spec, SimpleNamespace(x=0))
    assert bound == [((2, 1, 1), (32, 1, 1), (ctypes.c_int,), (2, 1, 1), 64)]
    made = []

    def make(x):
        return lambda: made.append(x) or SimpleNamespace(x=x)

    launch_at((16, 32), make(1))
    launch_at((16, 32), make(2))  # a repeat: nothing made or packed
    launch_at((16, 48), make(3))
    stream[0] = 4
    launch_at((16, 32), make(4))  # the same pointers on another stream
    launch_at((16, 48), make(5))
    stream[0] = 3
    launch_at((16, 48), make(6))
    assert made == [1, 3, 4, 5] and [c.x for c in packed] == made
    assert launched == [(("prepared", (1,)), 3), (("prepared", (1,)), 3),
                        (("prepared", (3,)), 3), (("prepared", (4,)), 4),
                        (("prepared", (5,)), 4), (("prepared", (3,)), 3)]
