"""``dgreg demo``: one real GEMM end to end, checked against float64, with the path it took.

Inputs are built as DeepGEMM's tests build them (random BF16, then FP8 with per-token scales
for A and 128x128 block scales for B); ``dgreg.gemm`` computes ``D = A @ B.T``; an
independent float64 dequantise-and-multiply checks it. The output says which kernel ran
and, when it was the torch reference, why.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from dgreg.cli.args import int_at_least

if TYPE_CHECKING:
    import torch

    from dgreg.dispatch import Resolution

__all__ = ["Check", "DemoInputs", "add_parser", "check", "make_inputs", "run"]

#: calc_diff limits of the conformance suite (DESIGN.md section 8).
CALC_DIFF_LIMIT = {"fp8": 1e-3, "bf16": 1e-5}
# D is rounded to BF16 (relative half-ulp 2**-8) after FP32 accumulation: allow twice that,
# relative to the largest output.
MAX_ABS_REL = 2.0**-7


_positive = int_at_least(1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="run one GEMM end to end and check it against float64",
        description="Build random inputs as DeepGEMM's tests do, run dgreg.gemm, check the "
                    "result against an independent float64 computation and report the path "
                    "taken, the resolution and the timing. Exit 0 on pass, 1 on failure.")
    parser.add_argument("--m", type=_positive, default=256, help="rows of A and D (256)")
    parser.add_argument("--n", type=_positive, default=512, help="rows of B, columns of D (512)")
    parser.add_argument("--k", type=_positive, default=1024, help="reduction size (1024)")
    parser.add_argument("--dtype", choices=("fp8", "bf16"), default="fp8",
                        help="operand type: fp8 (1d2d recipe) or bf16 (default fp8)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the tensors live (auto: cuda if a GPU is present)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--repeat", type=_positive, default=5,
                        help="timed calls after the first (5)")
    parser.set_defaults(func=run)


# -- inputs and the independent check ---------------------------------------------------------

@attrs.frozen
class DemoInputs:
    """The ``dgreg.gemm`` keyword arguments and what the check compares against."""

    gemm_args: dict[str, Any]
    exact: torch.Tensor  # float64 product of the operands as dgreg sees them (dequantised)
    unquantised: torch.Tensor | None  # float64 product of the BF16 inputs before the FP8 cast


def _torch_device(choice: str) -> torch.device:
    import torch

    from dgreg.errors import UnsupportedDeviceError

    has_gpu = torch.cuda.is_available()
    if choice == "cuda" and not has_gpu:
        raise UnsupportedDeviceError(
            "--device cuda needs a GPU, and torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "use --device cpu or auto")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and has_gpu) else "cpu")


def _dequantised(x: torch.Tensor, sf: torch.Tensor, block_rows: int) -> torch.Tensor:
    """float64 ``x * sf`` with ``sf`` per ``block_rows`` rows x 128 columns (written out
    here rather than borrowed from dgreg.reference, so the check does not test itself)."""
    rows, cols = x.shape
    scale = sf.double().repeat_interleave(128, dim=1)[:, :cols]
    scale = scale.repeat_interleave(block_rows, dim=0)[:rows]
    return x.double() * scale


def _check_k(k: int, dtype: str) -> None:
    """K is the row stride of A and B: TMA needs it in 16-byte multiples (dgreg.call checks
    this too, but would name the argument 'a', which the demo's user never passed)."""
    from dgreg.errors import InvalidArgumentError

    elements = 16 // (1 if dtype == "fp8" else 2)
    if k % elements:
        raise InvalidArgumentError(
            "--k", f"a multiple of {elements} for {dtype} operands (rows must be 16-byte "
                   f"aligned for TMA)", k)


def make_inputs(m: int, n: int, k: int, dtype: str, device: torch.device,
                seed: int) -> DemoInputs:
    import torch

    from dgreg.layout import per_block_cast_to_fp8, per_token_cast_to_fp8

    gen = torch.Generator().manual_seed(seed)
    a = torch.randn((m, k), generator=gen, dtype=torch.bfloat16).to(device)
    b = torch.randn((n, k), generator=gen, dtype=torch.bfloat16).to(device)
    if dtype == "bf16":
        return DemoInputs({"a": a, "b": b}, a.double() @ b.double().T, None)
    a8, a_sf = per_token_cast_to_fp8(a)
    b8, b_sf = per_block_cast_to_fp8(b)
    exact = _dequantised(a8, a_sf, 1) @ _dequantised(b8, b_sf, 128).T
    return DemoInputs({"a": a8, "b": b8, "a_scale": a_sf, "b_scale": b_sf}, exact,
                      a.double() @ b.double().T)


@attrs.frozen
class Check:
    """The demo's two measures of error against float64, with their limits."""

    calc_diff: float
    calc_diff_limit: float
    max_abs: float
    max_abs_limit: float

    @property
    def passed(self) -> bool:
        # `not (x > limit)` would let NaN through; compare so that NaN fails
        return self.calc_diff < self.calc_diff_limit and self.max_abs <= self.max_abs_limit


def check(d: torch.Tensor, exact: torch.Tensor, dtype: str) -> Check:
    from dgreg.layout import calc_diff

    exact = exact.to(d.device)
    err = float((d.double() - exact).abs().max())
    limit = MAX_ABS_REL * float(exact.abs().max()) + 1e-6
    return Check(calc_diff(d, exact), CALC_DIFF_LIMIT[dtype], err, limit)


# -- running and reporting --------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return result, time.perf_counter() - start


def _resolution(gemm_args: dict[str, Any]) -> Resolution:
    """What ``dgreg.gemm`` resolves these arguments to, as the dispatcher sees the call."""
    from dgreg.call import dense_call
    from dgreg.device import current_device
    from dgreg.dispatch import resolve

    call = dense_call(**gemm_args)
    return resolve(call.spec, current_device(call.a.device), call.problem,
                   tensors_on=call.a.device.type)


def _path_lines(res: Resolution, device: torch.device) -> list[str]:
    chosen = res.chosen
    if chosen is None:  # dgreg.gemm raised NoKernelError before we get here; kept for safety
        return ["path: none (no candidate accepted)"]
    if not chosen.fallback:
        origin = f"plugin {chosen.plugin!r}"
        if chosen.distribution:
            origin += f" ({chosen.distribution} {chosen.version})".replace(" )", ")")
        return [f"path: kernel {chosen.kernel_id} from {origin} on {res.device!r}"]
    if device.type == "cpu":
        import torch

        why = ("no GPU is present (torch.cuda.is_available() is False)"
               if not torch.cuda.is_available() else "the tensors are on the CPU (--device cpu)")
        return [f"path: torch reference ({chosen.kernel_id}): {why},",
                "      so dgreg ran the torch reference path on the CPU; no GPU kernel ran"]
    offered = any(d.status == "rejected" and not d.candidate.fallback for d in res.decisions)
    why = ("no accelerated kernel accepted the call (reasons above)" if offered
           else f"no plugin offers an accelerated kernel for {res.device.arch}")
    return [f"path: torch reference ({chosen.kernel_id}) on {res.device!r}:", f"      {why}"]


def _report(args: argparse.Namespace, device: torch.device, res: Resolution, result: Check,
            quant: float | None, first_s: float, steady_s: float) -> None:
    flops = 2.0 * args.m * args.n * args.k
    verdict = "PASS" if result.passed else "FAIL"
    print("resolution:")
    print("\n".join("  " + line for line in str(res).splitlines()))
    print("\n".join(_path_lines(res, device)))
    what = "dequantise + matmul" if args.dtype == "fp8" else "matmul"
    print(f"check against an independent float64 {what}:")
    ok = result.calc_diff < result.calc_diff_limit
    print(f"  calc_diff    {result.calc_diff:<10.3e} limit {result.calc_diff_limit:<10.3e} "
          f"{'PASS' if ok else 'FAIL'}")
    ok = result.max_abs <= result.max_abs_limit
    print(f"  max abs err  {result.max_abs:<10.3e} limit {result.max_abs_limit:<10.3e} "
          f"{'PASS' if ok else 'FAIL'}")
    if quant is not None:
        print(f"  (FP8 quantisation alone, vs the unquantised BF16 product: calc_diff {quant:.3e})")
    print(f"timing: first call {first_s * 1e3:.2f} ms (includes resolution and any "
          f"compilation); steady state {steady_s * 1e6:.0f} us per call, "
          f"{flops / steady_s / 1e12:.3g} TFLOPS (median of {args.repeat})")
    print(f"result: {verdict}")


def run(args: argparse.Namespace) -> int:
    import dgreg
    from dgreg.errors import FallbackWarning
    from dgreg.layout import calc_diff

    device = _torch_device(args.device)
    _check_k(args.k, args.dtype)
    inputs = make_inputs(args.m, args.n, args.k, args.dtype, device, args.seed)
    recipe = " 1d2d" if args.dtype == "fp8" else ""
    print(f"dgreg demo: {args.dtype}{recipe} GEMM D[{args.m}, {args.n}] = A[{args.m}, {args.k}] "
          f"@ B[{args.n}, {args.k}].T on {device}" + (
              " (A: per_token_cast_to_fp8, B: per_block_cast_to_fp8)" if args.dtype == "fp8"
              else ""))
    with warnings.catch_warnings():
        # the fallback is reported below, with its reasons; the one-time warning would repeat it
        warnings.simplefilter("ignore", FallbackWarning)
        d, first_s = _timed(lambda: dgreg.gemm(**inputs.gemm_args), device)
        times = [_timed(lambda: dgreg.gemm(**inputs.gemm_args), device)[1]
                 for _ in range(args.repeat)]
        res = _resolution(inputs.gemm_args)
    result = check(d, inputs.exact, args.dtype)
    quant = calc_diff(d, inputs.unquantised) if inputs.unquantised is not None else None
    _report(args, device, res, result, quant, first_s, statistics.median(times))
    return 0 if result.passed else 1
