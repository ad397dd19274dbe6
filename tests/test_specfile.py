"""The spec-file loader: the repo's files load, and every malformation names file, key, problem.

A typo in a spec file must never silently drop coverage, so each kind of mistake (unknown
key, missing key, wrong type, unknown op, bad shape, a combination the op does not allow,
an op file disagreeing with dgreg.spec) has a test here.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from dgreg.conformance import cases, specfile
from dgreg.errors import SpecFileError
from dgreg.spec import OPS, Recipe

REPO_SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="module")
def ops() -> dict[str, specfile.OpSpec]:
    return specfile.load_ops(REPO_SPECS / "ops")


def test_every_op_in_dgreg_spec_has_an_op_file(ops: dict[str, specfile.OpSpec]) -> None:
    assert set(ops) == set(OPS)
    assert ops["fp8_gemm"].tolerance.max_calc_diff == 1e-3
    assert ops["bf16_gemm"].tolerance.max_calc_diff == 1e-5
    assert ops["k_grouped_fp8_gemm_contiguous"].alignment.group_k_step(Recipe.UE8M0) == 512


def test_every_repo_conformance_file_loads(ops: dict[str, specfile.OpSpec]) -> None:
    files = list(specfile.iter_case_files(REPO_SPECS / "conformance"))
    assert files
    covered = {case.op.op for path in files for case in specfile.load_case_file(path, ops)}
    assert covered == set(OPS), "every operation needs conformance cases"


def test_mutation_names_match_their_implementations() -> None:
    assert set(specfile.MUTATIONS) == set(cases._MUTATORS)


# -- op files ----------------------------------------------------------------------------------

def _copy_ops(tmp_path: Path) -> Path:
    target = tmp_path / "ops"
    shutil.copytree(REPO_SPECS / "ops", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _expect(exc: pytest.ExceptionInfo[SpecFileError], path: Path, key: str, problem: str) -> None:
    err = exc.value
    assert Path(err.path) == path
    assert err.key == key
    assert problem in err.problem, err.problem
    message = str(err)
    assert str(path) in message and f"[{key}]" in message and problem in message


def test_an_op_without_a_file_is_an_error(tmp_path: Path) -> None:
    ops_dir = _copy_ops(tmp_path)
    (ops_dir / "m_grouped_bf16_gemm_masked.toml").unlink()
    with pytest.raises(SpecFileError) as exc:
        specfile.load_ops(ops_dir)
    _expect(exc, ops_dir, "op", "no op file for m_grouped_bf16_gemm_masked")


@pytest.mark.parametrize(("file", "old", "new", "key", "problem"), [
    ("fp8_gemm.toml", 'op = "fp8_gemm"', 'op = "fp4_gemm"', "op", "unknown operation 'fp4_gemm'"),
    ("fp8_gemm.toml", 'op = "fp8_gemm"', 'op = "bf16_gemm"', "op", "must live in bf16_gemm.toml"),
    ("fp8_gemm.toml", 'grouping = "none"', 'grouping = "m_masked"', "grouping",
     "is 'm_grouped_fp8_gemm_masked' in dgreg.spec"),
    ("m_grouped_fp8_gemm_masked.toml", 'layouts = ["NT"]', 'layouts = ["NT", "NN"]', "layouts",
     "masked M-grouped GEMMs take layout NT"),
    ("fp8_gemm.toml", 'layouts = ["NT", "NN", "TN", "TT"]', 'layouts = ["NT"]', "layouts",
     "dgreg.spec allows NN, TN, TT for fp8_gemm"),
    ("k_grouped_fp8_gemm_contiguous.toml", 'recipes = ["1d1d", "ue8m0"]',
     'recipes = ["1d1d", "ue8m0", "1d2d"]', "recipes", "scale per row on both sides"),
    ("k_grouped_bf16_gemm_contiguous.toml", 'd_dtypes = ["float32"]',
     'd_dtypes = ["float32", "bfloat16"]', "d_dtypes", "write float32 D"),
    ("fp8_gemm.toml", "layouts = [", "layouts = 4 #", "layouts", "must be a layout"),
    ("fp8_gemm.toml", "accumulate = true", "accumulate = 1", "accumulate", "must be a boolean"),
    ("fp8_gemm.toml", "accumulate = true", "acumulate = true", "accumulate", "missing"),
    ("bf16_gemm.toml", 'entry_point = "dgreg.gemm"', 'entry_point = "dgreg.gemmm"', "entry_point",
     "not a public dgreg function"),
    ("bf16_gemm.toml", '"bf16_gemm_tt"]', '"bf16_gemm_xx"]', "deepgemm_names[3]",
     "'bf16_gemm_xx' is not a DeepGEMM-compatible name"),
    ("fp8_gemm.toml", "stride_alignment_bytes = 16", "stride_alignment_bytes = 8",
     "alignment.stride_alignment_bytes", "is 8 but the code enforces 16"),
    ("m_grouped_bf16_gemm_contiguous.toml", "group_m_alignment = 128", "group_m_alignment = 64",
     "alignment.group_m_alignment", "is 64 but the code enforces 128"),
    ("bf16_gemm.toml", "output_row_major = true", "output_row_major = true\ngroup_m_alignment = 128",
     "alignment.group_m_alignment", "does not apply to bf16_gemm"),
    ("k_grouped_fp8_gemm_contiguous.toml", "group_k_multiple_ue8m0 = 512\n", "",
     "alignment.group_k_multiple_ue8m0", "missing"),
    ("fp8_gemm.toml", "max_calc_diff = 1e-3", "max_calc_diff = -1.0", "tolerance.max_calc_diff",
     "must be a positive number"),
    ("fp8_gemm.toml", "max_abs_rel = 0.03125", "max_abs_rel = 0.03125\nmax_rel = 1.0",
     "tolerance.max_rel", "unknown key"),
    ("fp8_gemm.toml", "[tolerance]", "[tolerance\n", "<syntax>", "is not valid TOML"),
])
def test_malformed_op_file(tmp_path: Path, file: str, old: str, new: str, key: str,
                           problem: str) -> None:
    ops_dir = _copy_ops(tmp_path)
    _edit(ops_dir / file, old, new)
    with pytest.raises(SpecFileError) as exc:
        specfile.load_ops(ops_dir)
    _expect(exc, ops_dir / file, key, problem)


# -- conformance files -------------------------------------------------------------------------

GOOD = """
[[case]]
name = "good"
op = "fp8_gemm"
shapes = [[128, 256, 512]]
"""


def _case_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cases.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_good_case_file_loads(tmp_path: Path, ops: dict[str, specfile.OpSpec]) -> None:
    (case,) = specfile.load_case_file(_case_file(tmp_path, GOOD), ops)
    (inst,) = cases.expand(case)
    assert inst.id == "fp8_gemm/nt/m128n256k512"
    assert repr(inst.spec) == "GemmSpec(fp8_gemm.nt.1d2d.bf16)"


@pytest.mark.parametrize(("body", "key", "problem"), [
    # unknown keys
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nlayuot = "NT"\nshapes = [[1, 2, 3]]',
     "case[x].layuot", "unknown key"),
    ('colour = "red"\n' + GOOD, "colour", "unknown key"),
    ('[[case]]\nname = "x"\nop = "bf16_gemm"\ngroup_size = [[1]]\nnk = [[1, 2]]',
     "case[x].group_size", "unknown key (known keys: accumulate, api"),
    # missing keys
    ('[[case]]\nname = "x"\nshapes = [[1, 2, 3]]', "case[x].op", "missing (required)"),
    ('[[case]]\nop = "fp8_gemm"\nshapes = [[1, 2, 3]]', "case[0].name", "missing (required)"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"', "case[x].shapes", "missing"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nm = [1, 2]', "case[x].nk", "missing"),
    ('description = "nothing"', "case", "missing (required)"),
    # wrong types
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = "128x256x512"', "case[x].shapes",
     "must be a non-empty array of [m, n, k] arrays"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\ngpu_only = "yes"\nshapes = [[1, 2, 3]]',
     "case[x].gpu_only", "must be a boolean (got a string"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nlayout = ["NT", 4]\nshapes = [[1, 2, 3]]',
     "case[x].layout[1]", "must be a layout (got an integer"),
    ('[[case]]\nname = 7\nop = "fp8_gemm"\nshapes = [[1, 2, 3]]', "case[0].name", "must be a string"),
    ('case = 3', "case", "must be an array of tables"),
    # unknown values
    ('[[case]]\nname = "x"\nop = "fp4_gemm"\nshapes = [[1, 2, 3]]', "case[x].op",
     "unknown operation 'fp4_gemm'"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nlayout = "NX"\nshapes = [[1, 2, 3]]',
     "case[x].layout", "must be one of NT, NN, TN, TT"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nrecipe = "2d2d"\nshapes = [[1, 2, 3]]',
     "case[x].recipe", "must be one of none, 1d2d, 1d1d, ue8m0 (got '2d2d')"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nsize = "huge"\nshapes = [[1, 2, 3]]',
     "case[x].size", "must be one of small, large"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nexpect_error = "OopsError"\nshapes = [[1, 2, 3]]',
     "case[x].expect_error", "is not an error class of dgreg.errors"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nexpect_error = "InvalidArgumentError"\n'
     'mutate = "flip_bits"\nshapes = [[1, 2, 3]]', "case[x].mutate", "unknown mutation 'flip_bits'"),
    ('[[case]]\nname = "Bad Name"\nop = "fp8_gemm"\nshapes = [[1, 2, 3]]', "case[0].name",
     "must be lower-case letters"),
    # bad shapes
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = [[128, 256]]', "case[x].shapes[0]",
     "must be [m, n, k] arrays"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = [[128, -1, 512]]', "case[x].shapes[0][1]",
     "must be a non-negative integer"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = [[128, 1.5, 512]]', "case[x].shapes[0][1]",
     "must be a non-negative integer"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = [[1, 2, 3]]\nm = [1]\nnk = [[2, 3]]',
     "case[x].shapes", "give either shapes or m + nk"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nmn = [[1, 2]]\nshapes = [[1, 2, 3]]', "case[x].mn",
     "is not a shape key of fp8_gemm cases"),
    ('[[case]]\nname = "x"\nop = "m_grouped_fp8_gemm_masked"\ngroup_sizes = [[10, 300]]\n'
     'm_max = 256\nnk = [[128, 256]]', "case[x].m_max", "a group has 300 valid rows"),
    ('[[case]]\nname = "x"\nop = "m_grouped_bf16_gemm_contiguous"\ngroup_sizes = [[]]\n'
     'nk = [[128, 256]]', "case[x].group_sizes[0]", "must be non-empty arrays"),
    ('[[case]]\nname = "x"\nop = "m_grouped_bf16_gemm_contiguous"\nuniform_groups = [[0, 128]]\n'
     'nk = [[128, 256]]', "case[x].uniform_groups[0][0]", "at least 1 group"),
    ('[[case]]\nname = "x"\nop = "k_grouped_fp8_gemm_contiguous"\ngroup_sizes = [[128, 100]]\n'
     'mn = [[64, 64]]', "case[x].group_sizes", "group K 100 is not a multiple of 128"),
    ('[[case]]\nname = "x"\nop = "k_grouped_fp8_gemm_contiguous"\nrecipe = "ue8m0"\n'
     'group_sizes = [[128]]\nmn = [[64, 64]]', "case[x].group_sizes", "not a multiple of 512"),
    # combinations the op file does not allow (positive cases)
    ('[[case]]\nname = "x"\nop = "m_grouped_fp8_gemm_masked"\nlayout = "NN"\n'
     'group_sizes = [[1]]\nnk = [[128, 256]]', "case[x].layout", "'NN' is not allowed for"),
    ('[[case]]\nname = "x"\nop = "bf16_gemm"\nrecipe = "1d2d"\nshapes = [[1, 2, 3]]',
     "case[x].recipe", "'1d2d' is not allowed for bf16_gemm"),
    ('[[case]]\nname = "x"\nop = "k_grouped_bf16_gemm_contiguous"\nout_dtype = "bfloat16"\n'
     'group_sizes = [[1]]\nmn = [[1, 1]]', "case[x].out_dtype", "'bfloat16' is not allowed"),
    ('[[case]]\nname = "x"\nop = "m_grouped_bf16_gemm_masked"\naccumulate = true\n'
     'group_sizes = [[1]]\nnk = [[128, 256]]', "case[x].accumulate", "takes no accumulator C"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\npsum = true\nshapes = [[1, 2, 3]]', "case[x].psum",
     "only M-contiguous grouped GEMMs"),
    ('[[case]]\nname = "x"\nop = "bf16_gemm"\nscale_layout = "mn_major"\nshapes = [[1, 2, 3]]',
     "case[x].scale_layout", "takes no scale factors"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nmatch = "a"\nshapes = [[1, 2, 3]]', "case[x].match",
     "only applies to negative cases"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nlayout = ["NT", "NT"]\nshapes = [[1, 2, 3]]',
     "case[x].layout[1]", "repeats 'NT'"),
    # file-level
    (GOOD + GOOD, "case[1].name", "'good' is already the name of case[0]"),
    ('[[case]]\nname = "x"\nop = "fp8_gemm"\nshapes = [[1, 2, 3]\n', "<syntax>", "is not valid TOML"),
])
def test_malformed_case_file(tmp_path: Path, ops: dict[str, specfile.OpSpec], body: str,
                             key: str, problem: str) -> None:
    path = _case_file(tmp_path, body)
    with pytest.raises(SpecFileError) as exc:
        specfile.load_case_file(path, ops)
    _expect(exc, path, key, problem)


def test_match_takes_one_fragment_or_several(tmp_path: Path,
                                             ops: dict[str, specfile.OpSpec]) -> None:
    body = GOOD.replace('name = "good"', 'name = "good"\nexpect_error = "InvalidArgumentError"')
    one = body + 'match = "\'a\'"\n'
    several = body + 'match = ["\'a\'", "16 bytes"]\n'
    (case,) = specfile.load_case_file(_case_file(tmp_path, one), ops)
    assert case.match == ("'a'",)
    (case,) = specfile.load_case_file(_case_file(tmp_path, several), ops)
    assert case.match == ("'a'", "16 bytes")


def test_negative_cases_may_break_the_rules(tmp_path: Path, ops: dict[str, specfile.OpSpec]) -> None:
    """What is an error for a positive case is the point of a negative one."""
    body = """
    [[case]]
    name = "bad_layout"
    op = "m_grouped_fp8_gemm_masked"
    layout = "NN"
    group_sizes = [[1]]
    nk = [[128, 256]]
    expect_error = "UnsupportedSpecError"
    """
    (case,) = specfile.load_case_file(_case_file(tmp_path, body), ops)
    (inst,) = cases.expand(case)
    assert inst.spec is None and "take layout NT" in inst.spec_error
    assert inst.id == "m_grouped_fp8_gemm_masked/nn/g1m1n128k256/bad_layout"


@pytest.mark.parametrize(("body", "ids"), [
    ("""
     [[case]]
     name = "dense"
     op = "fp8_gemm"
     layout = ["NT", "TN"]
     recipe = ["1d2d", "ue8m0"]
     out_dtype = ["bfloat16", "float32"]
     m = [128]
     nk = [[4096, 7168]]
     """, ["fp8_gemm/nt/m128n4096k7168", "fp8_gemm/nt/fp32/m128n4096k7168",
           "fp8_gemm/nt/ue8m0/m128n4096k7168", "fp8_gemm/nt/ue8m0/fp32/m128n4096k7168",
           "fp8_gemm/tn/m128n4096k7168", "fp8_gemm/tn/fp32/m128n4096k7168",
           "fp8_gemm/tn/ue8m0/m128n4096k7168", "fp8_gemm/tn/ue8m0/fp32/m128n4096k7168"]),
    ("""
     [[case]]
     name = "contig"
     op = "m_grouped_fp8_gemm_contiguous"
     psum = [false, true]
     uniform_groups = [[4, 8192]]
     group_sizes = [[100, 0, 37]]
     nk = [[4096, 7168]]
     """, ["m_grouped_fp8_gemm_contiguous/nt/g3m100_0_37n4096k7168",
           "m_grouped_fp8_gemm_contiguous/nt/g4m8192n4096k7168",
           "m_grouped_fp8_gemm_contiguous/nt/psum/g3m100_0_37n4096k7168",
           "m_grouped_fp8_gemm_contiguous/nt/psum/g4m8192n4096k7168"]),
    ("""
     [[case]]
     name = "masked"
     op = "m_grouped_bf16_gemm_masked"
     uniform_groups = [[2, 512]]
     group_sizes = [[0, 64]]
     m_max = 512
     nk = [[7168, 2048]]
     """, ["m_grouped_bf16_gemm_masked/nt/g2m0_64max512n7168k2048",
           "m_grouped_bf16_gemm_masked/nt/g2m512n7168k2048"]),
    ("""
     [[case]]
     name = "kgrouped"
     op = "k_grouped_fp8_gemm_contiguous"
     accumulate = [false, "inplace"]
     group_sizes = [[128, 0]]
     mn = [[4096, 7168]]
     """, ["k_grouped_fp8_gemm_contiguous/tn/g2m4096n7168k128_0",
           "k_grouped_fp8_gemm_contiguous/tn/acc-inplace/g2m4096n7168k128_0"]),
])
def test_instance_ids_are_stable(tmp_path: Path, ops: dict[str, specfile.OpSpec], body: str,
                                 ids: list[str]) -> None:
    (case,) = specfile.load_case_file(_case_file(tmp_path, body), ops)
    assert [inst.id for inst in cases.expand(case)] == ids


def test_contiguous_layouts() -> None:
    rows, ids = cases.contiguous_layout((3, 0, 130), False, 128)
    assert rows == 384 and ids[:4] == [0, 0, 0, -1] and ids[128:] == [2] * 130 + [-1] * 126
    assert cases.contiguous_layout((100, 0, 37), True, 128) == (256, [100, 128, 165])
