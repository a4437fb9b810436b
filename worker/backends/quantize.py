"""int8 weights for CPU inference (APPRECIATION_QUANTIZE = "int8").

torch.ao's dynamic quantization (no new dependency): every nn.Linear, the output layer
included, gets int8 weights (one scale per tensor, computed once) and quantizes its input to
int8 on each call; fbgemm multiplies int8 x int8 with VNNI (AVX-512 VNNI, AMX on Intel) at
about twice the bf16 rate, and reads half the bytes of bf16 weights. It takes a float32
model: the rest (embeddings, norms, attention) runs in float32. What it changes in the outputs
is measured in bench/README.md ("int8 weights").

The other way measured, weight-only int8 (aten._weight_int8pack_mm: int8 weights, bf16
activations), was 1.2 to 2.9x slower than bf16 from 8 rows up on this project's EPYC, 5 to 6x
slower than dynamic int8: bench/machine.py runs all three.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

QUANTIZE_KINDS = ("", "int8")


class Int8WeightOnlyLinear(nn.Module):
    """nn.Linear with int8 weights, one scale per output channel, bf16 (or fp32) inputs."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight_int8, scales = quantize_per_channel(linear.weight.detach())
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scales", scales.to(linear.weight.dtype))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if not flat.is_contiguous():
            flat = flat.contiguous()
        out = torch.ops.aten._weight_int8pack_mm(flat, self.weight_int8, self.scales.to(x.dtype))
        out = out.reshape(*shape[:-1], self.out_features)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output row: (int8 weights, float32 scales)."""
    weight = weight.float()
    scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
    return quantized.contiguous(), scales


def quantize_model(model: nn.Module, kind: str) -> int:
    """Quantize every nn.Linear of a float32 model in place; returns how many."""
    if kind not in QUANTIZE_KINDS:
        raise ValueError(f"Unknown APPRECIATION_QUANTIZE {kind!r}: use '' or 'int8'")
    if not kind:
        return 0
    from torch.ao.quantization import quantize_dynamic

    count = sum(1 for module in model.modules() if type(module) is nn.Linear)
    quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return count


def linear_for(kind: str, weight: torch.Tensor) -> tuple[Callable[[torch.Tensor], Any], Any]:
    """(forward, input dtype) of one linear layer with these float32 weights (benchmarks)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    if kind == "bfloat16":
        linear = linear.to(torch.bfloat16)
        return linear, torch.bfloat16
    if kind == "float32":
        return linear, torch.float32
    if kind == "int8-weight-only":
        return Int8WeightOnlyLinear(linear.to(torch.bfloat16)), torch.bfloat16
    if kind == "int8-dynamic":
        from torch.ao.quantization import quantize_dynamic

        wrapped = quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)
        return wrapped, torch.float32
    raise ValueError(f"Unknown linear kind {kind!r}")
