"""The reference kernels the tests call directly, gathered from their op families (tte.ops), and the
numerics helpers beside them."""

from __future__ import annotations

from tte.ops import OPS
from tte.ops.conv import (
           conv,
           conv_accumulator,
           conv_grad_input,
           conv_grad_weight,
           conv_multiplier,
           conv_weight_update,
           pw_dw,
)
from tte.ops.elementwise import add, add_preround, grad_add, requantize, ste
from tte.ops.gemm import gemm, gemm_accumulator, gemm_grad_input, gemm_grad_weight, gemm_weight_update
from tte.ops.loss import xent
from tte.ops.pool import (
           avgpool,
           avgpool_accumulator,
           avgpool_grad,
           global_avgpool,
           global_avgpool_grad,
           maxpool,
           maxpool_grad,
)
from tte.ops.shape import concat, slice_
from tte.ops.update import bias_grad, bias_update, momentum, sgd
from tte.reference.numerics import expf, seq_sum

KERNELS = {name: op.kernel for name, op in OPS.items()}  # every op's reference kernel, by op name
GRAD_KERNELS = KERNELS

__all__ = ["GRAD_KERNELS", "KERNELS", "add", "add_preround", "avgpool", "avgpool_accumulator", "avgpool_grad",
           "bias_grad", "bias_update", "concat", "conv", "conv_accumulator", "conv_grad_input", "conv_grad_weight",
           "conv_multiplier", "conv_weight_update", "expf", "gemm", "gemm_accumulator", "gemm_grad_input",
           "gemm_grad_weight", "gemm_weight_update", "global_avgpool", "global_avgpool_grad", "grad_add", "maxpool",
           "maxpool_grad", "momentum", "pw_dw", "requantize", "seq_sum", "sgd", "slice_", "ste", "xent"]
