"""Seeded CPU inputs for the public-API tests (test_api, test_call, test_compat)."""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
BF16 = torch.bfloat16
FP32 = torch.float32


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def operand(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Standard normal values; FP8 ones scaled by 16 to use more of the format's range."""
    x = torch.randn(*shape, generator=gen(seed))
    return (x * 16).to(FP8) if dtype == FP8 else x.to(dtype)


def scales(*shape: int, seed: int) -> torch.Tensor:
    """Positive float32 scale factors in [0.25, 3.25)."""
    return torch.rand(*shape, generator=gen(seed)) * 3 + 0.25


def i32(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)
