"""The C emission machinery the ops' emitters use (:mod:`tte.ops`; each op's ``emit`` facet): names,
wrapping, shared constant arrays, the arena views of one C function, and literals of the runtime's
parameter structs.  The drivers that assemble whole programs are in :mod:`tte.codegen`.

The C is meant to be read: no line over LINE columns (a long call has one argument per line, each named
after its parameter in ``tte_runtime.h``), a named view of every arena tensor (its offset written once),
named kinds of kernel call (``TTE_KIND_*``), and every constant array once per C type and contents.
Output is deterministic: the same graph gives byte-identical text.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import TteError
from ..ir import Graph, Node
from ..ir.facts import value_bytes
from ..reference import semantics as sem
from . import common

if TYPE_CHECKING:
    from ..passes.arena import ArenaPlan


def _runtime_dir() -> pathlib.Path:
    """The C runtime: $TTE_RUNTIME_DIR; else tte/runtime_c inside an installed package (the wheel carries it
    there); else runtime_c/ at the top of the source tree (a checkout, or an editable install)."""
    if os.environ.get("TTE_RUNTIME_DIR"):
        return pathlib.Path(os.environ["TTE_RUNTIME_DIR"])
    package = pathlib.Path(__file__).resolve().parents[1]
    for candidate in (package / "runtime_c", package.parent / "runtime_c"):
        if (candidate / "include" / "tte_runtime.h").is_file():
            return candidate
    return package / "runtime_c"  # missing: the error names where it was expected


RUNTIME_DIR = _runtime_dir()
CTYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "bool": "uint8_t"}
CSIZES = {"int8_t": 1, "uint8_t": 1, "int32_t": 4, "float": 4, "double": 8}
ACC_LIMIT = 2**31 - 1
LINE = 120  # the longest line of the emitted C
MAX_IDENT = 63  # C99's minimum of significant characters in an internal identifier or a macro name


def c_float(x) -> str:
    """An exact float32 literal: hexadecimal, with the trailing zeros of its mantissa dropped."""
    f = float(np.float32(x))
    if not np.isfinite(f):
        raise TteError(f"cannot emit the non-finite constant {f}")
    if f == 0:
        return "0.0f"
    mantissa, exponent = f.hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"


def c_double(x) -> str:
    """An exact double literal: hexadecimal, with the trailing zeros of its mantissa dropped."""
    f = float(x)
    if not np.isfinite(f):
        raise TteError(f"cannot emit the non-finite constant {f}")
    if f == 0:
        return "0.0"
    mantissa, exponent = f.hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}"


def c_name(text: str, prefix: str = "", limit: int = MAX_IDENT) -> str:
    """A readable C identifier for an IR name: ``prefix``, then its words (runs of letters and digits)
    joined by '_'.  One longer than ``limit`` characters (C99 guarantees 63 significant ones) loses, until
    it fits: words that repeat the one before, dtype words (the view's type says it), then words before
    its last one."""
    words = re.findall(r"[0-9A-Za-z]+", text) or ["value"]
    if len(prefix + "_".join(words)) > limit:
        words = [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]
    if len(prefix + "_".join(words)) > limit:
        words = [w for w in words if w not in ("int8", "uint8", "int32", "float32")] or words
    if len(prefix + "_".join(words)) > limit:
        last, kept = words[-1], []
        for w in words[:-1]:
            if len(prefix + "_".join([*kept, w, last])) > limit:
                break
            kept.append(w)
        words = [*kept, last]
    return (prefix + "_".join(words))[:limit]


def c_comment(text: str, indent: int = 0) -> list[str]:
    """``/* text */``, wrapped at LINE columns."""
    pad = " " * indent
    text = " ".join(text.replace("*/", "* /").replace("/*", "/ *").split())
    if len(pad) + len(text) + 6 <= LINE:
        return [f"{pad}/* {text} */"]
    lines = textwrap.wrap(text, LINE - indent - 6, break_long_words=True, break_on_hyphens=False)
    return [f"{pad}/* {lines[0]}"] + [f"{pad} * {line}" for line in lines[1:-1]] + [f"{pad} * {lines[-1]} */"]


def _closing(text: str, end: int) -> int:
    """The index of the bracket that the bracket at ``end`` closes."""
    depth = 0
    for i in range(end, -1, -1):
        if text[i] in ")}]":
            depth += 1
        elif text[i] in "({[":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced brackets in {text!r}")


def split_args(text: str) -> list[str]:
    """The comma-separated items of an argument or initializer list, nested brackets kept whole."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return items


def wrap_expr(expr: str, indent: int, tail: str = "", width: int = LINE) -> list[str]:
    """``expr`` + ``tail`` on one line if it fits in ``width`` columns, else its last bracketed list (a
    call's arguments, an initializer's items) one item per line, four columns in, each wrapped the same
    way and followed by its name (:func:`item_names`) when known."""
    pad = " " * indent
    if indent + len(expr) + len(tail) <= width or expr[-1:] not in ")}":
        return [pad + expr + tail]
    open_ = _closing(expr, len(expr) - 1)
    head, items = expr[:open_ + 1], split_args(expr[open_ + 1:-1])
    if items == [""]:
        return [pad + expr + tail]
    return [pad + head] + _items(items, item_names(head, len(items)), indent + 4, expr[-1] + tail, width)


def _items(items: list[str], names: list[str], indent: int, close: str, width: int) -> list[str]:
    """One item per line (the last followed by ``close``), each with its name in a comment (on the first
    line of an item that takes several), the comments lined up where they fit."""
    notes = [f" /* {n} */" if n else "" for n in names]
    blocks = [wrap_expr(item, indent, "," if i < len(items) - 1 else close, width - len(note))
              for i, (item, note) in enumerate(zip(items, notes))]
    column = max(len(b[0]) for b in blocks)
    out = []
    for b, note in zip(blocks, notes):
        out += [(b[0].ljust(column) if column + len(note) <= width else b[0]) + note] + b[1:]
    return out


@functools.cache
def runtime_names(header: pathlib.Path) -> dict[str, list[str]]:
    """The runtime's functions and structs, each with its parameters' or fields' names, from ``header``."""
    text = re.sub(r"/\*.*?\*/", " ", header.read_text(), flags=re.S)
    names = {}
    for function, params in re.findall(r"\b(tte_\w+)\s*\(([^;{}()]*)\)\s*;", text):
        names[function] = [re.findall(r"\w+", p)[-1] for p in params.split(",") if p.strip() not in ("", "void")]
    for body, struct in re.findall(r"typedef\s+struct\s*\{([^{}]*)\}\s*(tte_\w+)\s*;", text):
        fields = []
        for declaration in filter(str.strip, body.split(";")):
            fields += [re.findall(r"\w+", d.split("[")[0])[-1] for d in declaration.split(",")]
        names[struct] = fields
    return names


def item_names(head: str, count: int) -> list[str]:
    """The names of the ``count`` items of a list opened by ``head``: a runtime function's parameters, or
    the fields of a runtime struct's compound literal; empty when unknown."""
    m = re.search(r"\b(tte_\w+)\)?[({]$", head)
    names = runtime_names(RUNTIME_DIR / "include" / "tte_runtime.h").get(m[1], []) if m else []
    return names if len(names) == count else [""] * count


def format_call(lead: str, call: str, end: str, indent: int = 4) -> list[str]:
    """The statement ``lead`` + ``call`` + ``end`` (``call`` is ``function(arguments)``): on one line if it
    fits, else one argument per line, each followed by its parameter's name when ``function`` is a kernel."""
    pad = " " * indent
    if indent + len(lead) + len(call) + len(end) <= LINE:
        return [pad + lead + call + end]
    open_ = call.index("(")
    args = split_args(call[open_ + 1:-1])
    return [pad + lead + call[:open_ + 1]] + _items(args, item_names(call[:open_ + 1], len(args)), indent + 4,
                                                    ")" + end, LINE)


@dataclass
class CArray:
    """A static array of the emitted C: const ones live in flash, the others (state) in SRAM."""

    name: str
    ctype: str
    items: list[str]  # C literals
    const: bool
    users: list[str]  # the hints of the uses it serves: the first named it, the others share it
    uses: int = 1

    def __str__(self) -> str:
        """The array as C: its items wrapped at LINE columns, 16, 8, 4, 2 or 1 to a line."""
        items = self.items or ["0"]
        width = max(len(i) for i in items) + 2
        per_line = next(k for k in (16, 8, 4, 2, 1) if k == 1 or 4 + k * width - 1 <= LINE)
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        note = c_comment("shared with identical " + ", ".join(self.users[1:])) if len(self.users) > 1 else []
        qualifier = "static const" if self.const else "static"
        return "\n".join([*note, f"{qualifier} {self.ctype} {self.name}[{len(items)}] = {{"]) + "\n    " + \
            ",\n    ".join(lines) + "\n};"

    @property
    def nbytes(self) -> int:
        return CSIZES[self.ctype] * max(len(self.items), 1)


class Shared:
    """What the functions of one emitted program share: constants (flash), state (SRAM), scratch, and
    the kinds of kernel call.

    A constant array is emitted once per C type and contents: an array identical to one already made is
    that array (named after its first use; a comment lists the others)."""

    def __init__(self, scratch: int = 0) -> None:
        self.arrays: list[CArray] = []  # in order of creation
        self.by_contents: dict[tuple[str, str], CArray] = {}  # the const ones
        self.const_names: dict[str, str] = {}
        self.state: dict[str, str] = {}  # state value -> its static array (a split weight: the trained slice)
        self.frozen_part: dict[str, str] = {}  # split weight -> const array of its untrained remainder
        self.split_channels: dict[str, int] = {}  # split weight -> trained leading channels (rows if depthwise)
        self.op_kinds: dict[str, str] = {}  # op -> its TTE_KIND_ name, for TTE_PROFILE: time per kind of op
        self.scratch = scratch  # bytes: the plan's figure (tte.passes.memory.graph_scratch)

    def kind(self, op: str) -> str:
        """The TTE_KIND_ constant of an op (its index counts kinds in order of first use)."""
        if op not in self.op_kinds:
            name, i = c_name(op, "TTE_KIND_").upper(), 2
            while name in self.op_kinds.values():
                name, i = f"{c_name(op, 'TTE_KIND_').upper()}_{i}", i + 1
            self.op_kinds[op] = name
        return self.op_kinds[op]

    def call_macros(self) -> str:
        """The kinds of kernel call and TTE_CALL(kind, call): checks the status; with -DTTE_PROFILE (bare
        metal) also adds up SysTick ticks per kind of op, printed by tte_profile_print()."""
        kinds = "".join(f"    {k},\n" for k in self.op_kinds.values())
        n = "TTE_KIND_COUNT" if self.op_kinds else "1"
        names = "".join(f'    [{k}] = "{op}",\n' for op, k in self.op_kinds.items()) or '    "",\n'
        return f"""/* The kinds of kernel call: TTE_CALL(kind, call) checks the call's status; with -DTTE_PROFILE (bare
 * metal) it also adds up SysTick ticks per kind, which tte_profile_print() prints. */
enum {{
{kinds}    TTE_KIND_COUNT
}};

#define TTE_CHECK(call) do {{ if ((call) != TTE_OK) return -1; }} while (0)
#ifdef TTE_PROFILE
#include <stdio.h>
extern uint64_t tte_ticks(void);
static uint64_t tte_profile_ticks[{n}];
static const char *const tte_profile_names[{n}] = {{
{names}}};
#define TTE_CALL(kind, call) do {{ uint64_t t0_ = tte_ticks(); TTE_CHECK(call); \\
    tte_profile_ticks[kind] += tte_ticks() - t0_; }} while (0)
void tte_profile_print(void) {{
    for (int i = 0; i < {n}; i++)
        printf("profile %s ticks %lu\\n", tte_profile_names[i], (unsigned long)tte_profile_ticks[i]);
}}
#else
#define TTE_CALL(kind, call) TTE_CHECK(call)
#endif
"""

    def array(self, hint: str, data: np.ndarray, ctype: str, const: bool = True) -> str:
        """The name of a static array of ``data``: a const one (flash) is shared with every identical one."""
        flat = np.asarray(data).reshape(-1)
        fmt = {"float": c_float, "double": c_double}.get(ctype, lambda v: str(int(v)))
        items = [fmt(v) for v in flat]
        key = (ctype, ",".join(items))
        if const and key in self.by_contents:
            array = self.by_contents[key]
            array.uses += 1
            if hint not in array.users:
                array.users.append(hint)
            return array.name
        prefix = f"{'k' if const else 's'}{len(self.arrays)}_"
        array = CArray(c_name(hint, prefix, len(prefix) + 48), ctype, items, const, [hint])
        self.arrays.append(array)
        if const:
            self.by_contents[key] = array
        return array.name

    @property
    def consts(self) -> list[str]:
        """Every static array, as C."""
        return [str(a) for a in self.arrays]

    @property
    def shared_bytes(self) -> int:
        """Flash the sharing of identical constant arrays saves: the bytes of the copies not emitted."""
        return sum(a.nbytes * (a.uses - 1) for a in self.arrays)

    def arrays_section(self) -> str:
        """Every static array, after a comment on where they live."""
        saved = f" (sharing saves {self.shared_bytes:,} B here)" if self.shared_bytes else ""
        state = "; the others (trained parameters, optimizer state) in SRAM" if self.state else ""
        note = c_comment(f"Arrays: the const ones live in flash, each emitted once per C type and contents{saved}"
                         f"{state}.")
        return "\n".join(note) + "\n" + "\n\n".join(self.consts)


class Emitter:
    """One C function's body over graph ``g``: its calls, and a named view of every arena tensor they use
    (``view_prefix`` + the value's name), defined once with its offset by :meth:`view_definitions`."""

    def __init__(self, g: Graph, plan: ArenaPlan, root: dict[str, str], shared: Shared | None = None,
                 view_prefix: str = "t_"):
        self.g = g
        self.shared = shared or Shared()
        self.body: list[str] = []
        self.plan, self.root = plan, root
        # a state update writes the state array in place
        self.state_of = {new: old for old, new in g.state_updates.items()}
        self.view_prefix = view_prefix
        self.views: dict[str, str] = {}  # arena value -> its view's name, in order of first use
        self.quantize_rows: str | None = None  # a streamed input: the quantize function its float row source calls

    @property
    def consts(self) -> list[str]:
        return self.shared.consts

    @property
    def scratch(self) -> int:
        return self.shared.scratch

    # -- constants ----------------------------------------------------------------------------
    def array(self, hint: str, data: np.ndarray, ctype: str) -> str:
        return self.shared.array(hint, data, ctype)

    def value_const(self, name: str) -> str:
        """A constant's array, or the SRAM array of a trained parameter."""
        if name in self.shared.state:
            return self.shared.state[name]
        if name not in self.shared.const_names:
            v = self.g[name]
            self.shared.const_names[name] = self.array(name, v.data, CTYPES[v.dtype])
        return self.shared.const_names[name]

    def split_weights_init(self, name: str, depthwise: bool) -> str:
        """The initializer of a conv weight's tte_split_weights: the trained slice (SRAM) and the frozen
        rest (flash), or the whole tensor."""
        if name in self.shared.frozen_part:
            return (f"{{{self.shared.state[name]}, {self.shared.frozen_part[name]}, "
                    f"{self.shared.split_channels[name]}}}")
        return f"{{{self.value_const(name)}, NULL, {self.g[name].shape[0 if depthwise else 1]}}}"

    def split_weights(self, name: str, depthwise: bool) -> str:
        return f"&(const tte_split_weights){self.split_weights_init(name, depthwise)}"

    def weight_zero_points(self, name: str) -> str:
        arrays = common.weight_zero_points(self.g, name)
        return self.array(f"{name}_zp", arrays[0], "int32_t") if arrays else "NULL"

    # -- buffers --------------------------------------------------------------------------------
    def ptr(self, name: str) -> str:
        """A value's memory: its state array, or its named view of the arena."""
        name = self.state_of.get(name, name)
        if name in self.shared.state:
            return self.shared.state[name]
        if name not in self.views:
            base = view = c_name(name, self.view_prefix)
            i = 2
            while view in self.views.values():
                view, i = f"{base[:MAX_IDENT - len(str(i)) - 1]}_{i}", i + 1
            self.views[name] = view
        return self.views[name]

    def view_definitions(self, function: str) -> str:
        """The arena views of this function's tensors, by offset: the name, the IR value, dtype, shape and
        bytes, and the one place where its offset is written."""
        if not self.views:
            return ""
        producer = {out: n for n in self.g.nodes for out in n.outputs}
        first_use = {v: i for i, v in enumerate(self.views)}
        lines = c_comment(f"The tensors of {function} in the arena, at the offsets the planner chose: tensors "
                          "whose lifetimes do not overlap share bytes.")
        for v in sorted(self.views, key=lambda v: (self.plan.offsets[self.root[v]], first_use[v])):
            val, root = self.g[v], self.root[v]
            dtype = "bool (bit-packed)" if val.dtype == "bool" else val.dtype
            text = f"{v}: {dtype} [{', '.join(map(str, val.shape))}], {value_bytes(self.g, v):,} B"
            if root != v:  # the same buffer as the producer's operand
                operand = producer[v].inputs[0]
                how = "a view" if producer[v].op in ("reshape", "freshape") else "in place"
                text += f"; the bytes of {self.views.get(operand, operand)} ({producer[v].op}: {how})"
            lines += c_comment(text)
            lines.append(f"#define {self.views[v]} (({CTYPES[val.dtype]} *)(tte_arena + "
                         f"{self.plan.offsets[root]}))")
        return "\n".join(lines) + "\n"

    def dims(self, name: str) -> str:
        s = self.g[name].shape
        s4 = tuple(s) + (1,) * (4 - len(s)) if len(s) <= 4 else None
        if s4 is None:
            raise TteError(f"cannot emit a {len(s)}-d tensor '{name}'")
        return "&(const tte_dims){%d, %d, %d, %d}" % s4

    def quant(self, x: str, y: str, node: Node, z_in: int | None = None) -> str:
        zx = int(self.g[x].quant.zero_point) if z_in is None else z_in
        zy = int(self.g[y].quant.zero_point)
        return quant_literal(zx, zy, node.attrs["qmin"], node.attrs["qmax"])

    def tflite_quant(self, x: str, y: str, node: Node, multipliers: tuple[np.ndarray, np.ndarray], hint: str,
                     z_in: int | None = None, zy: int | None = None, clamp: tuple[int, int] | None = None) -> str:
        """A tte_quant_params literal that selects TFLite's arithmetic: the zero points and clamp as
        :meth:`quant`, then const arrays of the Q31 multipliers (``hint``_m) and their exponents (``hint``_shift)."""
        zx = int(self.g[x].quant.zero_point) if z_in is None else z_in
        zy = int(self.g[y].quant.zero_point) if zy is None else zy
        lo, hi = (node.attrs["qmin"], node.attrs["qmax"]) if clamp is None else clamp
        m, n = multipliers
        return quant_literal(zx, zy, lo, hi, self.array(f"{hint}_m", np.asarray(m, np.int32), "int32_t"),
                             self.array(f"{hint}_shift", np.asarray(n, np.int32), "int32_t"))

    def mask(self, node: Node) -> str:
        """The bit-packed saturation mask a forward op writes in a training graph, or NULL."""
        return self.ptr(node.outputs[1]) if node.attrs.get("save_mask") else "NULL"

    def comment(self, text: str) -> None:
        """A comment in the body, wrapped."""
        self.body += c_comment(text, 4)

    def call(self, node: Node, text: str) -> None:
        """A kernel call ``text`` (``function(arguments)``) for ``node``, its status checked (TTE_CALL)."""
        self.comment(f"{node.op} {node.name}")
        self.body += format_call(f"TTE_CALL({self.shared.kind(node.op)}, ", text, ");")


def quant_literal(zx: int, zy: int, qmin: int, qmax: int, multiplier: str = "NULL", shift: str = "NULL") -> str:
    """A tte_quant_params literal; multiplier / shift name TFLite's Q31 arrays, NULL selects float32 ones."""
    return "&(const tte_quant_params){%d, %d, %d, %d, %s, %s}" % (zx, zy, qmin, qmax, multiplier, shift)


def conv_geo(attrs: dict, groups: int | None = None) -> str:
    """A tte_conv_geometry literal from a conv-like node's strides, pads and groups."""
    g = attrs["groups"] if groups is None else groups
    return "&(const tte_conv_geometry){%d, %d, %d, %d, %d, %d, %d}" % (*attrs["strides"], *attrs["pads"], g)


def pool_geo(attrs: dict) -> str:
    """A tte_pool_geometry literal from a window node's kernel, strides and pads."""
    return "&(const tte_pool_geometry){%d, %d, %d, %d, %d, %d, %d, %d}" % (*attrs["kernel"], *attrs["strides"],
                                                                            *attrs["pads"])


def check_acc(g: Graph, node: Node, w: str) -> None:
    """int32 accumulation of products must not overflow: |x - z_x| <= 255, |w - z_w| <= 255."""
    k = int(np.prod(g[w].shape[1:]))
    if k * 255 * 255 > ACC_LIMIT:
        raise TteError(f"layer '{node.name}' sums {k} products per output: its int32 accumulator could "
                       f"overflow; tte supports up to {ACC_LIMIT // (255 * 255)}")


ROUNDING = {"nearest": "TTE_ROUND_NEAREST", "trunc": "TTE_ROUND_TRUNC", "stochastic": "TTE_ROUND_STOCHASTIC",
            "accumulate": "TTE_ROUND_ACCUMULATE"}


def weights(e: Emitter, w: str, depthwise: bool = False) -> str:
    scales = common.weight_scales(e.g, w)[0]
    return (f"&(const tte_weights_s8){{{e.split_weights_init(w, depthwise)}, {e.weight_zero_points(w)}, "
            f"{e.array(w + '_scales', scales, 'float')}}}")


def saved(e: Emitter, x: str) -> str:
    q = e.g[x].quant
    return f"&(const tte_saved_s8){{{e.ptr(x)}, {int(q.zero_point)}, {c_float(q.scale)}}}"


# the emitted program's learning rate: a variable (tte_set_learning_rate), not a literal, so that a schedule can
# change it between steps; every update reads it
LEARNING_RATE = "tte_learning_rate"


def sgd_params(e: Emitter, node: Node, aux: str | None) -> str:
    a = node.attrs
    step = f"(uint32_t)*{e.ptr(aux)}" if a["rounding"] == "stochastic" else "0"
    residual = e.ptr(aux) if a["rounding"] == "accumulate" else "NULL"
    return (f"&(const tte_sgd_params){{{LEARNING_RATE}, {ROUNDING[a['rounding']]}, {a.get('seed', 0)}u, "
            f"{a.get('stream', 0)}u, {step}, {a['qmin']}, {a['qmax']}, {residual}}}")


def rescale(g: Graph, x: str, y: str) -> str:
    return c_float(sem.multiplier(g[x].quant.scale, g[y].quant.scale))
