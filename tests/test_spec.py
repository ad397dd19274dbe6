from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dgreg.errors import UnsupportedSpecError
from dgreg.spec import OPS, DType, GemmSpec, Grouping, Layout, Problem, Recipe, spec_for


def test_spec_accepts_names_and_enums_alike():
    by_name = GemmSpec("fp8", "float8_e4m3fn", "bf16", "nt", "none", "1D2D")
    by_enum = GemmSpec(DType.FP8_E4M3, DType.FP8_E4M3, DType.BF16, Layout.NT, Grouping.NONE,
                       Recipe.R1D2D)
    assert by_name == by_enum and hash(by_name) == hash(by_enum)
    assert repr(by_name) == "GemmSpec(fp8_gemm.nt.1d2d.bf16)"


def test_spec_is_frozen():
    spec = spec_for("bf16_gemm")
    with pytest.raises(AttributeError):
        spec.layout = Layout.TN  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        (dict(a_dtype="fp8", b_dtype="bf16"), "share a dtype"),
        (dict(a_dtype="fp32", b_dtype="fp32"), "float8_e4m3fn or bfloat16"),
        (dict(a_dtype="bf16", b_dtype="bf16", d_dtype="fp8"), "D must be"),
        (dict(a_dtype="fp8", b_dtype="fp8"), "need a scaling recipe"),
        (dict(a_dtype="bf16", b_dtype="bf16", recipe="1d1d"), "take no scaling recipe"),
        (dict(a_dtype="bf16", b_dtype="bf16", layout="TN", grouping="m_contiguous"), "K-major A"),
        (dict(a_dtype="bf16", b_dtype="bf16", layout="NN", grouping="m_masked"), "layout NT"),
        (dict(a_dtype="bf16", b_dtype="bf16", d_dtype="fp32", grouping="k_contiguous"), "layout TN"),
        (dict(a_dtype="bf16", b_dtype="bf16", layout="TN", grouping="k_contiguous"), "float32 D"),
        (dict(a_dtype="fp8", b_dtype="fp8", d_dtype="fp32", layout="TN", grouping="k_contiguous",
              recipe="1d2d"), "1d1d or ue8m0"),
    ],
)
def test_undefined_combinations_name_the_rule(fields, rule):
    with pytest.raises(UnsupportedSpecError, match=rule):
        GemmSpec(**fields)


def test_bad_field_values_name_the_field():
    with pytest.raises(ValueError, match="'layout' must be one of"):
        GemmSpec("bf16", "bf16", layout="XY")
    with pytest.raises(ValueError, match="'recipe' must be"):
        GemmSpec("fp8", "fp8", recipe=(1, 2, 3))
    with pytest.raises(TypeError):
        GemmSpec("bf16", "bf16", accumulate="yes")


def test_deepgemm_recipe_tuples():
    assert Recipe.parse((1, 128, 128)) is Recipe.R1D2D
    assert Recipe.parse((1, 1, 128)) is Recipe.R1D1D


def test_every_op_has_a_default_spec_with_that_op_name():
    for op in OPS:
        assert spec_for(op).op == op
    assert len(OPS) == 8
    with pytest.raises(UnsupportedSpecError, match="unknown operation"):
        spec_for("fp4_gemm")


def test_layout_majors_round_trip():
    for layout in Layout:
        assert Layout.from_majors(layout.a_k_major, layout.b_k_major) is layout
    assert Layout.NT.a_k_major and Layout.NT.b_k_major
    assert not Layout.TN.a_k_major and not Layout.TN.b_k_major


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 64))
def test_problem_accepts_sizes(m, n, k, g):
    p = Problem(m, n, k, g)
    assert (p.m, p.n, p.k, p.groups) == (m, n, k, g)
    assert p.is_empty == (m == 0 or n == 0)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_problem_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="'m' must be a non-negative int"):
        Problem(bad, 1, 1)
    with pytest.raises(ValueError, match="'groups' must be a positive int"):
        Problem(1, 1, 1, groups=0)
    with pytest.raises(ValueError, match="'group_ks'"):
        Problem(1, 1, 1, group_ks=(1, -2))


def test_problem_repr_is_compact():
    assert repr(Problem(128, 4096, 7168)) == "m128n4096k7168"
    assert repr(Problem(256, 4096, 7168, 4, expected_m=200)) == "g4m256n4096k7168~m200"
