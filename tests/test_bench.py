"""The benchmark's timing order: each library is timed first in alternate rounds, and every
kernel time is taken before any per-call loop."""

from __future__ import annotations

import math
from types import SimpleNamespace

from dgreg import bench


def test_alternating_rounds_swap_which_library_runs_first_and_average():
    seen = []
    times = {"ours": [10.0, 14.0], "theirs": [20.0, 22.0]}

    def ours():
        pass

    def theirs():
        pass

    who = {ours: "ours", theirs: "theirs"}

    def timer(fn):
        seen.append(who[fn])
        return times[who[fn]].pop(0)

    assert bench._alternating(ours, theirs, timer) == (12.0, 21.0)
    assert seen == ["ours", "theirs", "theirs", "ours"]


def test_alternating_without_a_vendor_run_reports_nan():
    t_ours, t_theirs = bench._alternating(lambda: None, None, lambda fn: 5.0)
    assert t_ours == 5.0 and math.isnan(t_theirs)


def test_suite_takes_every_kernel_time_before_any_per_call_loop(monkeypatch):
    """do_bench's 100 ms loops heat the card: the kernel times of all shapes come first."""
    import torch

    seen = []

    def prepare(m, n, k):
        def ours():
            return None

        return {"ours": ours, "theirs": None, "d": torch.zeros(1), "ref": torch.zeros(1),
                "limit": 1e-3, "flops": 2.0 * m * n * k, "bytes": 1.0,
                "explain": ("bf16_gemm", (m, n, k))}

    monkeypatch.setitem(bench._SUITES, "fake", (prepare, "vendor", "bf16"))
    monkeypatch.setattr(bench, "measure_peaks", lambda kind: {"peak_tflops": 1.0, "peak_gbps": 1.0})
    monkeypatch.setattr(bench, "_check", lambda *args: 0.0)
    monkeypatch.setattr(bench, "kernel_time_us", lambda fn: seen.append("kernel") or (1.0, ["k"]))
    monkeypatch.setattr(bench, "call_time_us", lambda fn: seen.append("call") or 2.0)
    monkeypatch.setattr(bench.torch.cuda, "get_device_name", lambda: "fake GPU", raising=False)
    picked = SimpleNamespace(choice=SimpleNamespace(config="config"), is_fallback=False)
    monkeypatch.setattr(bench.dgreg, "explain", lambda *args, **kwargs: picked)
    result = bench.run_suite("fake", [(64, 128, 256), (128, 256, 512)], log=lambda line: None)
    assert seen == ["kernel"] * 4 + ["call"] * 4
    assert [row["kernel_us"] for row in result["rows"]] == [1.0, 1.0]
    assert [row["kernels"] for row in result["rows"]] == [["k"], ["k"]]


def test_a_row_names_the_fallback_where_no_plugin_offers_a_kernel() -> None:
    """Without the arch's plugin the bench times the fallback; its rows say so instead of
    failing on a missing config."""
    import dgreg
    from dgreg import config
    from dgreg.registry import reset_registry

    with config.scope(DGREG_PLUGINS=("sm90",)):
        reset_registry()
        served = dgreg.explain("fp8_gemm", (4096, 4096, 7168), device="h200", file=None)
        assert bench._config_label(served) == repr(served.choice.config)
        assert bench._config_label(served).startswith("Sm90GemmConfig(fp8, block_m=")
    with config.scope(DGREG_PLUGINS=()):  # the reference alone
        reset_registry()
        fallback = dgreg.explain("fp8_gemm", (4096, 4096, 7168), device="h200", file=None)
        assert fallback.choice is None
        assert bench._config_label(fallback) == "fallback: reference.torch"
