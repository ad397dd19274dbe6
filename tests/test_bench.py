"""The benchmark's timing order: each library is timed first in alternate rounds."""

from __future__ import annotations

import math

from dgreg import bench


def test_timed_pair_alternates_which_library_runs_first_and_averages(monkeypatch):
    seen = []
    kernel = {"ours": [10.0, 14.0], "theirs": [20.0, 22.0]}
    call = {"ours": [11.0, 15.0], "theirs": [21.0, 25.0]}

    def ours():
        pass

    def theirs():
        pass

    who = {ours: "ours", theirs: "theirs"}

    def fake_kernel_time(fn, calls=30):
        seen.append(("kernel", who[fn]))
        return kernel[who[fn]].pop(0), [f"{who[fn]}_kernel"]

    def fake_call_time(fn):
        seen.append(("call", who[fn]))
        return call[who[fn]].pop(0)

    monkeypatch.setattr(bench, "kernel_time_us", fake_kernel_time)
    monkeypatch.setattr(bench, "call_time_us", fake_call_time)
    t_ours, c_ours, t_theirs, c_theirs, names = bench._timed_pair(ours, theirs)
    assert seen == [("kernel", "ours"), ("call", "ours"), ("kernel", "theirs"), ("call", "theirs"),
                    ("kernel", "theirs"), ("call", "theirs"), ("kernel", "ours"), ("call", "ours")]
    assert (t_ours, c_ours, t_theirs, c_theirs) == (12.0, 13.0, 21.0, 23.0)
    assert names == ["ours_kernel"]


def test_timed_pair_without_a_vendor_run_reports_nan(monkeypatch):
    monkeypatch.setattr(bench, "kernel_time_us", lambda fn, calls=30: (5.0, ["k"]))
    monkeypatch.setattr(bench, "call_time_us", lambda fn: 6.0)
    t_ours, c_ours, t_theirs, c_theirs, _ = bench._timed_pair(lambda: None, None)
    assert (t_ours, c_ours) == (5.0, 6.0)
    assert math.isnan(t_theirs) and math.isnan(c_theirs)
