"""Each JIT plugin's per-call ``pack``, on the CPU: for the conformance suite's small cases it
returns one argument per kernel parameter, in types the launcher can write, and finds the TMA
maps over the call's tensors in the plan's cache on the next call. The driver is stubbed: maps are recorded, not
encoded, and GPU-only helpers (the transposing copy, split-K workspaces) use torch on the CPU.
"""

from __future__ import annotations

import struct

import pytest
import torch
from plugin_helpers import SPECS

from dgreg import config
from dgreg.conformance import load_case_file, load_ops
from dgreg.conformance.cases import _Builder, _reference_call, expand
from dgreg.device import preset
from dgreg.dispatch import resolve
from dgreg.jit import launch as jit_launch
from dgreg.jit import tma
from dgreg.registry import get_registry


class FakeMap(tuple):
    """What ``tensor_map`` was asked for, standing in for a ``CUtensorMap``."""

    def getPtr(self) -> int:  # cuda-bindings' name
        return id(self)


@pytest.fixture
def stub_driver(monkeypatch):
    made = []

    def fake_tensor_map(address, dtype, shape, strides, box, swizzle=0, **_):
        made.append(address)
        return FakeMap((address, dtype, tuple(shape), tuple(strides), tuple(box), swizzle))

    monkeypatch.setattr(tma, "tensor_map", fake_tensor_map)
    monkeypatch.setattr(jit_launch, "raw_stream_getter", lambda: (lambda device: 0))
    return made


def _small_instances():
    ops = load_ops(SPECS / "ops")
    for path in sorted((SPECS / "conformance").glob("*.toml")):
        for case in load_case_file(path, ops):
            if case.expect_error is None and case.size != "large":
                for inst in expand(case):
                    if inst.spec is not None and inst.problem is not None and \
                            not inst.problem.is_empty:
                        yield inst


@pytest.mark.parametrize(("plugin", "device"), [("sm90", "h200"), ("sm100", "b200")])
def test_pack_gives_every_kernel_argument_and_caches_its_maps(plugin, device, stub_driver,
                                                               monkeypatch):
    pytest.importorskip(f"dgreg_{plugin}", reason=f"the dgreg-{plugin} distribution is not installed")
    if plugin == "sm90":
        from dgreg_sm90 import launch as sm90_launch

        # the transposing copy and the split-K workspace are GPU kernels / CUDA tensors
        monkeypatch.setattr(sm90_launch, "to_k_major", lambda x: x.contiguous())
        monkeypatch.setattr(sm90_launch, "workspace", lambda device, stream, floats, tiles: (
            torch.empty(floats), torch.zeros(tiles, dtype=torch.int32)))
    target = preset(device)
    packed = 0
    with config.scope(DGREG_PLUGINS=(plugin,)):
        registry = get_registry()
        for inst in _small_instances():
            plan = resolve(inst.spec, target, inst.problem, plugin=plugin)
            if plan.chosen is None or plan.chosen.plugin != plugin:
                continue
            call = _reference_call(inst, _Builder(inst, "cpu").build())
            spec = registry.launch_args(plan.chosen, plan.choice.config, call)
            fmt, objects, first, last = jit_launch._arg_layout(spec.arg_types)
            args = spec.pack(call)
            assert len(args) == len(spec.arg_types), inst.id
            assert all(isinstance(args[i], FakeMap) for i in objects), inst.id
            struct.pack(fmt, *args[first:last])  # every scalar fits its slot's type
            # a second call maps nothing the first mapped over the call's own tensors (copies
            # made per call, such as a transposed operand, land at new addresses on the CPU)
            maps = len(stub_driver)
            spec.pack(call)
            own = {t.data_ptr() for t in (call.a, call.b, call.d, call.a_scale, call.b_scale)
                   if t is not None}
            again = own.intersection(stub_driver[maps:])
            assert not again, f"{inst.id}: maps at {again} not found in the plan's cache"
            packed += 1
    assert packed >= 50, f"only {packed} {plugin} cases packed"


def test_sm90_dense_arguments_are_reusable_unless_the_call_makes_a_tensor(stub_driver,
                                                                          monkeypatch):
    """A dense call whose operands are used as they are is marked reusable: its arguments
    follow its addresses (and, split, the stream's workspace). An operand the call must copy
    first (MN-major A), A scales in another layout, or packed UE8M0 scales are not, and the
    arguments are over the copy."""
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    from types import SimpleNamespace

    from dgreg_sm90 import launch as sm90_launch
    from dgreg_sm90.config import Sm90GemmConfig

    stream = [0]
    monkeypatch.setattr(jit_launch, "raw_stream_getter", lambda: (lambda device: stream[0]))
    spaces: dict[int, tuple] = {}

    def workspace(device, s, floats, tiles):
        return spaces.setdefault(s, (torch.empty(floats), torch.zeros(tiles, dtype=torch.int32)))

    monkeypatch.setattr(sm90_launch, "workspace", workspace)
    copies = []
    monkeypatch.setattr(sm90_launch, "to_k_major",
                        lambda x: copies.append(x.contiguous()) or copies[-1])
    m, n, k = 64, 256, 512
    spec = sm90_launch.gemm_launch(Sm90GemmConfig(64, 128, 4, 132, split_k=2), m, n, k)
    fp8 = torch.float8_e4m3fn
    a, b = torch.zeros(m, k, dtype=fp8), torch.zeros(n, k, dtype=fp8)
    d = torch.empty(m, n, dtype=torch.bfloat16)
    sfa, sfb = torch.ones(k // 128, m).t(), torch.ones(n // 128, k // 128)
    call = SimpleNamespace(a=a, b=b, d=d, c=None, a_scale=sfa, b_scale=sfb)
    assert spec.reusable(call)
    first = spec.pack(call)
    d_slot = 9  # D's address (see ARG_TYPES)
    assert first[d_slot] == d.data_ptr() and first[4][0] == d.data_ptr()  # and D's store map
    other_d = torch.empty_like(d)
    moved = spec.pack(SimpleNamespace(**{**vars(call), "d": other_d}))
    assert moved[d_slot] == other_d.data_ptr() and moved[4][0] == other_d.data_ptr()
    assert moved[:4] == first[:4]
    stream[0] = 7  # split-K partials live in the stream's own workspace
    on_seven = spec.pack(call)
    assert on_seven[-2] == spaces[7][0].data_ptr() != first[-2]
    mn_major = SimpleNamespace(**{**vars(call), "a": torch.zeros(k, m, dtype=fp8).t()})
    assert not spec.reusable(mn_major)
    for made in (1, 2):  # each call copies A, and A's map is over this call's copy
        assert spec.pack(mn_major)[0][0] == copies[-1].data_ptr() and len(copies) == made
    assert not spec.reusable(SimpleNamespace(**{**vars(call), "a_scale": sfa.contiguous()}))
    ue8m0 = sm90_launch.gemm_launch(Sm90GemmConfig(64, 128, 4, 132), m, n, k, ue8m0=True)
    assert not ue8m0.reusable(call)
    kgrouped = sm90_launch.gemm_launch(Sm90GemmConfig(64, 128, 4, 132, k_grouped=True,
                                                      out_f32=True, sfb_rows=True),
                                       m, n, 2 * k, groups=2, group_ks=(k, k))
    assert kgrouped.reusable is None  # its operands are copied in every call


def test_sm90_masked_a_scales_are_mapped_where_they_lie(stub_driver):
    """The masked kernel reads A's scales [G, M_max, KB] MN-major and TMA-aligned (the layout
    ``get_mn_major_tma_aligned_tensor`` gives) in place: expert g's K block kb is row
    g * KB + kb of a map whose columns are the expert's M_max rows, and the call's arguments
    are reusable. Scales in another layout are copied into that one first (not reusable)."""
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    from types import SimpleNamespace

    from dgreg_sm90 import launch as sm90_launch
    from dgreg_sm90.config import Sm90GemmConfig

    from dgreg.layout import get_mn_major_tma_aligned_tensor

    groups, m_max, n, k = 3, 61, 256, 640
    kb, m_pad = k // 128, 64
    spec = sm90_launch.gemm_launch(Sm90GemmConfig(64, 128, 4, 132, grouped=True, masked=True),
                                   m_max, n, k, groups=groups)
    fp8 = torch.float8_e4m3fn
    rows = torch.arange(groups * m_max * kb, dtype=torch.float32).view(groups, m_max, kb)
    sfa = get_mn_major_tma_aligned_tensor(rows)
    assert sfa.stride() == (kb * m_pad, 1, m_pad)
    call = SimpleNamespace(a=torch.zeros(groups, m_max, k, dtype=fp8),
                           b=torch.zeros(groups, n, k, dtype=fp8),
                           d=torch.empty(groups, m_max, n, dtype=torch.bfloat16), c=None,
                           a_scale=sfa, b_scale=torch.ones(groups, n // 128, kb),
                           grouped_layout=torch.full((groups,), m_max, dtype=torch.int32),
                           use_psum_layout=False)
    sfa_slot = 2
    mapped = spec.pack(call)[sfa_slot]
    assert mapped == (sfa.data_ptr(), "float32", (groups * kb, m_max), (m_pad, 1), (1, 64), 0)
    # the map's row g * KB + kb, column r is expert g's scale of row r and K block kb
    flat = torch.as_strided(sfa, (groups * kb, m_max), (m_pad, 1))
    assert torch.equal(flat.view(groups, kb, m_max).transpose(1, 2), rows)
    assert spec.reusable(call)
    copied = SimpleNamespace(**{**vars(call), "a_scale": rows})
    row_major = spec.pack(copied)[sfa_slot]
    assert row_major[0] != rows.data_ptr() and row_major[1:] == mapped[1:]
    assert not spec.reusable(copied)
    contiguous = sm90_launch.gemm_launch(Sm90GemmConfig(128, 128, 4, 132, grouped=True),
                                         groups * 128, n, k, groups=groups)
    flat = SimpleNamespace(**{**vars(call), "a": torch.zeros(groups * 128, k, dtype=fp8),
                              "a_scale": get_mn_major_tma_aligned_tensor(torch.ones(groups * 128, kb)),
                              "d": torch.empty(groups * 128, n, dtype=torch.bfloat16)})
    assert contiguous.reusable(flat)
    assert not contiguous.reusable(SimpleNamespace(**{**vars(flat), "use_psum_layout": True}))
    nn = torch.zeros(groups, k, n, dtype=fp8).transpose(1, 2)  # B passed [G, K, N]: copied
    assert not contiguous.reusable(SimpleNamespace(**{**vars(flat), "b": nn}))


@pytest.mark.parametrize(("block_m", "block_n", "n", "width", "d_tma", "box", "swizzle"), [
    (64, 128, 256, 256, 1, (64, 64), 128),  # 64-column chunks under the 128B swizzle
    (64, 88, 256, 256, 1, (64, 88), 0),     # one unswizzled box per tile
    (64, 88, 256, 264, 1, (64, 88), 0),     # a row-padded D: the map takes its row stride
    (64, 128, 100, 100, 0, None, None),     # N % 8: a TMA store would write past N
    (64, 88, 100, 104, 0, None, None),
    (256, 128, 256, 256, 1, (128, 64), 128),  # two warpgroups: each stores its 128 rows
    (128, 88, 256, 256, 1, (64, 88), 0),
])
def test_sm90_d_is_tma_stored_only_when_n_is_a_multiple_of_8(stub_driver, monkeypatch, block_m,
                                                             block_n, n, width, d_tma, box,
                                                             swizzle):
    """The kernel's ``d_tma`` argument and D's map: TMA stores write whole 16-byte units, so
    a BF16 D with N not a multiple of 8 is written by the threads (the map slot then holds a
    placeholder the kernel never reads). A row-padded D and a packed one at the same address
    get their own row strides. The box holds the rows one group of the tile's writers stores
    (each of two math warpgroups its own)."""
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    from types import SimpleNamespace

    from dgreg_sm90 import launch as sm90_launch
    from dgreg_sm90.config import Sm90GemmConfig

    m, k = 64, 512
    spec = sm90_launch.gemm_launch(Sm90GemmConfig(block_m, block_n, 3, 132), m, n, k)
    fp8 = torch.float8_e4m3fn
    a, b = torch.zeros(m, k, dtype=fp8), torch.zeros(n, k, dtype=fp8)
    storage = torch.empty(m, width, dtype=torch.bfloat16)
    sfa, sfb = torch.ones(k // 128, m).t(), torch.ones(-(-n // 128), k // 128)
    call = SimpleNamespace(a=a, b=b, d=storage[:, :n], c=None, a_scale=sfa, b_scale=sfb)
    args = spec.pack(call)
    d_tma_slot = 16  # see ARG_TYPES
    assert args[d_tma_slot] == d_tma
    if d_tma:
        assert args[4] == (storage.data_ptr(), "bfloat16", (m, n), (width, 1), box, swizzle)
    else:
        assert args[4] is args[0]  # A's map stands in
    packed = SimpleNamespace(**{**vars(call), "d": storage.view(-1)[:m * n].view(m, n)})
    if width != n:  # same address, other row stride
        assert spec.pack(packed)[10] == n  # ldd
