"""QOperator handlers of the lifter: QLinearConv, QLinearMatMul and the com.microsoft QLinear* / QGemm ops map
one to one onto IR nodes, their int8 operands read with the scale / zero point inputs beside them."""

from __future__ import annotations

import numpy as np

from ..ir import QuantParams
from ..ir.facts import add_note
from .entries import (
    Const,
    Entry,
    Int8,
    QConst,
    bias_quant,
    check_scale,
    describe,
    onnx_attrs,
    per_channel,
    quant_params,
)


class QOperatorOps:
    """Mixed into :class:`tte.frontend.onnx_frontend.Lifter`."""

    def qinput(self, node, i: int) -> tuple[str, QuantParams]:
        """The int8 operand at input i with its scale/zero point at inputs i+1, i+2 (checked)."""
        e = self.entry(node, node.input[i])
        if not isinstance(e, Int8):
            raise self.fail(node, f"input '{node.input[i]}' is not an int8 tensor")
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        q = self.act_quant(node, self.const(node, node.input[i + 1]), zp)
        if self.g[e.name].quant != q:
            raise self.fail(node, f"reads '{node.input[i]}' with {q!r}, but it was quantized with "
                                  f"{self.g[e.name].quant!r}")
        return e.name, q

    def qweight(self, node, i: int, cout_axis: int) -> tuple[np.ndarray, QuantParams]:
        data = self.const(node, node.input[i])
        scale = self.const(node, node.input[i + 1])
        check_scale(self, node, scale)
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        axis = cout_axis if np.asarray(scale).size > 1 else None
        return self.weight(node, QConst(data, quant_params(scale, zp, axis, data.ndim)),
                           f"weight '{node.input[i]}'", cout_axis)

    def out_quant(self, node, i: int) -> QuantParams:
        if not self.opt_input(node, i):
            raise self.fail(node, "has no output scale (float output); tte needs int8 outputs")
        zp = self.const(node, node.input[i + 1]) if self.opt_input(node, i + 1) else None
        return self.act_quant(node, self.const(node, node.input[i]), zp)

    def int32_bias(self, node, i: int) -> Entry | None:
        name = self.opt_input(node, i)
        if name is None:
            return None
        data = self.const(node, name)
        if data.dtype != np.int32:
            raise self.fail(node, f"bias '{name}' is {data.dtype}, expected int32")
        return data

    def op_QLinearConv(self, node):
        x, xq = self.qinput(node, 0)
        wdata, wq = self.qweight(node, 3, 0)
        quant = self.out_quant(node, 6)
        bias = self.int32_bias(node, 8)
        b = None if bias is None else QConst(bias, bias_quant(xq, per_channel(wq, wdata.shape[0])), node.input[8])
        if wdata.ndim != 4:
            raise self.fail(node, f"only 2-d convolutions are supported (weight shape {wdata.shape})")
        win = self.window(node, self.g[x].shape, wdata.shape[2:])
        out = self.conv_node(node, node.name or node.output[0], x, wdata, wq, b, node.output[0], quant,
                             win["strides"], win["pads"], int(onnx_attrs(node).get("group", 1)),
                             {"qmin": -128, "qmax": 127})
        self.env[node.output[0]] = Int8(out)

    def _qgemm(self, node, x, xq, wdata, wq, bias, quant, transposed: bool):
        b = None if bias is None else QConst(bias, bias_quant(xq, per_channel(wq, wdata.shape[0])), node.input[6])
        out = self.gemm_node(node, node.name or node.output[0], x, wdata, wq, b, node.output[0], quant,
                             {"qmin": -128, "qmax": 127}, transposed, self.pre_columns)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearMatMul(self, node):
        x, xq = self.qinput(node, 0)
        wdata, wq = self.qweight(node, 3, 1)
        wq = QuantParams(wq.scale, wq.zero_point, 0 if wq.axis is not None else None)
        self._qgemm(node, x, xq, np.ascontiguousarray(wdata.T), wq, None, self.out_quant(node, 6), True)

    def op_QGemm(self, node):
        a = onnx_attrs(node)
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0:
            raise self.fail(node, "only QGemm with transA=0 and alpha=1 is supported")
        x, xq = self.qinput(node, 0)
        trans = a.get("transB", 0)
        wdata, wq = self.qweight(node, 3, 0 if trans else 1)
        if not trans:
            wdata = np.ascontiguousarray(wdata.T)
            wq = QuantParams(wq.scale, wq.zero_point, 0 if wq.axis is not None else None)
        self._qgemm(node, x, xq, wdata, wq, self.int32_bias(node, 6), self.out_quant(node, 7), not trans)

    def op_QLinearAdd(self, node):
        first, second = 0, 3
        if isinstance(self.entry(node, node.input[0]), Const):
            if isinstance(self.entry(node, node.input[3]), Const):
                raise self.fail(node, "adds two constants; fold them before quantizing (do_constant_folding=True)")
            first, second = 3, 0  # addition commutes: exact
            add_note(self.g, f"{describe(node)}: constant operand first, swapped (addition commutes)")
        a, _ = self.qinput(node, first)
        b = self.qconst_operand(node, second) if isinstance(self.entry(node, node.input[second]), Const) else \
            self.qinput(node, second)[0]
        out = self.emit("add", node.name or node.output[0], [a, b], node.output[0], self.out_quant(node, 6),
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def qconst_operand(self, node, i: int) -> str:
        """A constant int8 operand (e.g. the bias of a QOperator MatMul + Add) as an IR constant."""
        data = self.const(node, node.input[i])
        zp = self.const(node, node.input[i + 2]) if self.opt_input(node, i + 2) else None
        if data.dtype != np.int8:
            raise self.fail(node, f"constant operand '{node.input[i]}' is {data.dtype}, expected int8")
        return self.g.add_const(node.input[i], data, self.act_quant(node, self.const(node, node.input[i + 1]), zp)).name

    def _channels_first(self, node):
        if onnx_attrs(node).get("channels_last", 0):
            raise self.fail(node, "channels_last=1 is not supported (NCHW only)")

    def op_QLinearGlobalAveragePool(self, node):
        self._channels_first(node)
        x, _ = self.qinput(node, 0)
        out = self.emit("global_avgpool", node.name or node.output[0], [x], node.output[0],
                        self.out_quant(node, 3), qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearAveragePool(self, node):
        self._channels_first(node)
        x, _ = self.qinput(node, 0)
        win = self.window(node, self.g[x].shape)
        out = self.emit("avgpool", node.name or node.output[0], [x], node.output[0], self.out_quant(node, 3),
                        kernel=win["kernel"], strides=win["strides"], pads=win["pads"],
                        count_include_pad=self.count_include_pad(onnx_attrs(node), self.pre_pads), qmin=-128,
                        qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearConcat(self, node):
        quant = self.out_quant(node, 0)
        xs = [self.qinput(node, i)[0] for i in range(2, len(node.input), 3)]
        rank, axis = len(self.g[xs[0]].shape), onnx_attrs(node)["axis"]
        if not -rank <= axis < rank:
            raise self.fail(node, f"axis {axis} is out of range for inputs of rank {rank}")
        axis %= rank
        out = self.emit("concat", node.name or node.output[0], xs, node.output[0], quant, axis=axis,
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearSigmoid(self, node):
        x, _ = self.qinput(node, 0)
        out = self.emit("sigmoid", node.name or node.output[0], [x], node.output[0], self.out_quant(node, 3),
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)

    def op_QLinearMul(self, node):
        consts = [isinstance(self.entry(node, node.input[i]), Const) for i in (0, 3)]
        if all(consts):
            raise self.fail(node, "multiplies two constants; fold them before quantizing (do_constant_folding=True)")
        if any(consts):  # a multiply by a constant: a per-channel affine map
            k, i = (0, 3) if consts[0] else (3, 0)
            x, _ = self.qinput(node, i)
            data = self.const(node, node.input[k])
            zp = self.const(node, node.input[k + 2]) if self.opt_input(node, k + 2) else np.zeros((), data.dtype)
            scale = self.const(node, node.input[k + 1])
            real = (data.astype(np.float64) - zp.astype(np.float64)) * scale.astype(np.float64)
            scale = self.channel_constant(node, real, self.g[x].shape)
            out = self.affine_node(node, node.name or node.output[0], x, scale, np.zeros_like(scale), node.output[0],
                                   self.out_quant(node, 6), {"qmin": -128, "qmax": 127})
            self.env[node.output[0]] = Int8(out)
            return
        a, b = self.mul_operands(node, self.qinput(node, 0)[0], self.qinput(node, 3)[0])
        out = self.emit("mul", node.name or node.output[0], [a, b], node.output[0], self.out_quant(node, 6),
                        qmin=-128, qmax=127)
        self.env[node.output[0]] = Int8(out)
