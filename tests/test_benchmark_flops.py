"""The benchmarks' FLOP counter counts what MFU claims: CPU attention included, forward and backward."""

import sys

import torch
import torch.nn.functional as F

from _paths import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import _flops


def test_cpu_attention_is_counted_forward_and_backward():
    b, h, t, d = 2, 4, 121, 8
    q, k, v = (torch.randn(b, h, t, d, requires_grad=True) for _ in range(3))
    fwd = 4 * b * h * t * t * d  # QK^T and PV, 2 FLOPs per multiply-add
    assert _flops.count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == fwd
    # backward: dV, dP, dQ, dK (four matmuls) plus the forward's two recomputed by flash attention's counter
    total = _flops.count_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    assert total == fwd + 2 * fwd + fwd // 2
    _flops.register_cpu_attention_flops()  # idempotent: a second registration must not raise


def test_linear_and_conv_counts_are_unchanged():
    x = torch.randn(4, 8, 11, 11)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    assert _flops.count_flops(lambda: conv(x)) == 2 * 4 * 16 * 121 * 8 * 9
