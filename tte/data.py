"""Training samples for a model: images from a folder or an ``.npz``, prepared for the model's input, quantized,
split, and packed into a sample file that the emitted demo reads (`tte data pack`; `make run DATA=...`).

Sources:

* an image folder: one subfolder per class (sorted by name: the first is class 0), PNG / JPEG / BMP images in it
  (read with Pillow);
* an ``.npz`` with ``x`` (N images: [N, H, W] or [N, H, W, C], C = 1, 3 or 4; uint8 0-255, or float in [0, 1])
  and ``y`` (N integer class labels >= 0); ``images`` / ``labels`` are read as well (``../shared/data``'s names).

Each image becomes exactly the int8 input of the model (:func:`prepare`):

1. intensities in [0, 1]: uint8 / 255, float as given;
2. channels as the model needs them: grayscale copied into R, G and B; RGB to grayscale by ITU-R 601-2 luma
   (0.299 R + 0.587 G + 0.114 B, what Pillow's ``convert("L")`` does); an alpha channel is dropped;
3. resized to the model's H x W with Pillow's bilinear filter on float32 planes (which averages over the source
   area when it shrinks);
4. mapped to the value range the model expects (``value_range``): ``-1,1`` (x * 2 - 1, i.e. pixel / 127.5 - 1),
   ``0,1`` or ``0,255``; ``auto`` (the default) picks by the input quantization's representable range
   [(-128 - z) s, (127 - z) s]: ``0,255`` if it reaches past 2, else ``-1,1`` if it reaches below -0.1 times its
   top, else ``0,1``;
5. laid out as the model declares its input (NCHW for ONNX, NHWC for TFLite and for ONNX models whose input a
   Transpose follows: the graph input's shape as :func:`tte.load` reports it) and quantized with the model's input
   scale and zero point by tte's own quantize op, so it is the int8 input the Python API computes from the same
   float image.

The split: the samples are shuffled (``numpy.random.default_rng(seed).permutation``), ``limit`` keeps the first
N, and the last ``round(test_fraction * N)`` (or all but the first ``split``) form the held-out test split.

The sample file (little-endian; one header, then ``count`` records; the first ``train`` records are the
training split in the order training visits them, the rest the test split):

====== ========= =====================================================================================
offset type      field
====== ========= =====================================================================================
0      char[8]   magic ``TTEDATA\\0``
8      u32       format version (1)
12     u32       header bytes (80): records start here
16     u32       count: records in the file
20     u32       train: records in the training split (the first ones)
24     u32       sample bytes: int8 values per sample (the model's TTE_INPUT_SIZE)
28     u32       classes: labels are in [0, classes)
32     u32       rank of the input shape (<= 4)
36     u32[4]    the input shape (batch 1; unused dimensions 0)
52     f32       input scale (the model's TTE_INPUT_SCALE)
56     i32       input zero point (TTE_INPUT_ZERO_POINT)
60     u32       layout: 0 NCHW, 1 NHWC
64     u64       model id: the first 8 bytes of the SHA-256 of the model file, big-endian (0: unknown)
72     f32[2]    the value range the images were mapped to (informative)
80     records   each: i32 label, then ``sample bytes`` int8 values in the model's input layout
====== ========= =====================================================================================

The demo refuses a file whose sample bytes, input scale or zero point differ from its model's, whose classes
exceed the model's, or whose model id names another model file.
"""

from __future__ import annotations

import os
import pathlib
import struct
from dataclasses import dataclass, field

import numpy as np

from .codegen.demo import source_id as model_id
from .errors import TteError
from .ir import Graph

MAGIC = b"TTEDATA\0"
VERSION = 1
_HEADER = struct.Struct("<8s7I4IfiIQff")
HEADER_BYTES = _HEADER.size  # 80
LAYOUTS = ("NCHW", "NHWC")
RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class InputFormat:
    """What a model takes as its int8 input: shape (batch 1), layout, quantization, and which model file."""

    shape: tuple[int, ...]
    layout: str
    scale: float  # a float32 value
    zero_point: int
    model_id: int = 0

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape))

    @property
    def hwc(self) -> tuple[int, int, int]:
        """(height, width, channels) of the image the model takes."""
        if len(self.shape) != 4:
            raise TteError(f"the model's input has shape {list(self.shape)}; tte data prepares images only for "
                           "4-d inputs (N, C, H, W or N, H, W, C)")
        _, a, b, c = self.shape
        return (b, c, a) if self.layout == "NCHW" else (a, b, c)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """float32 inputs that the model's quantize turns back into ``q`` (what the Python API trains on)."""
        q = np.asarray(q, np.int8).reshape((-1, *self.shape[1:]))
        return ((q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)).astype(np.float32)

    def describe(self) -> str:
        return (f"input {'x'.join(map(str, self.shape))} {self.layout}, scale {self.scale:.9g}, zero point "
                f"{self.zero_point}")


class ModelInput:
    """A model's input: its :class:`InputFormat` and its quantize op (tte's own, as the Python API runs it)."""

    def __init__(self, graph: Graph, source_bytes: bytes | None):
        self.graph = graph
        x = graph.inputs[0]
        node = next((n for n in graph.nodes if n.op == "quantize" and x in n.inputs), None)
        if node is None:
            raise TteError(f"the model's input '{x}' is not quantized by the model; tte data needs a float input "
                           "that the model quantizes")
        self.node = node
        q = graph[node.output].quant
        shape = tuple(int(d) for d in graph[x].shape)
        consumers = [n for n in graph.nodes if node.output in n.inputs]
        nhwc = len(shape) == 4 and (
            (source_bytes is not None and source_bytes[4:8] == b"TFL3")
            or any(n.op == "transpose" and tuple(n.attrs.get("perm", ())) == (0, 3, 1, 2) for n in consumers))
        self.format = InputFormat(shape, "NHWC" if nhwc else "NCHW", float(np.float32(q.scale)),
                                  int(np.asarray(q.zero_point).reshape(-1)[0]), model_id(source_bytes))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """int8 of a float32 input of the model's shape, by the model's quantize op."""
        from .ops.shape import quantize

        return np.asarray(quantize(self.graph, self.node, np.asarray(x, np.float32)), np.int8)


def model_input(model) -> ModelInput:
    """The input of ``model``: an ONNX / TFLite path, a `tte compile` output directory (its copy of the source
    model), a :class:`tte.Graph`, a :class:`tte.Program` or a :class:`tte.codegen.NativeProgram`."""
    if hasattr(model, "program"):  # NativeProgram
        model = model.program
    if hasattr(model, "forward") and hasattr(model, "source_bytes"):  # Program
        return ModelInput(model.forward, model.source_bytes)
    if isinstance(model, Graph):
        src = model.metadata.get("source")
        data = None
        if src:
            try:
                data = pathlib.Path(src).read_bytes()
            except OSError:
                data = None
        return ModelInput(model, data)
    from .frontend import load

    path = pathlib.Path(os.fspath(model))
    if path.is_dir():
        from .codegen.project import read_record

        _, path = read_record(path)
    g = load(str(path))
    return ModelInput(g, path.read_bytes())


# -- reading images ------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Images:
    """Images of a source before preparation: ``get(i)`` gives image i as float32 H x W x C in [0, 1]."""

    labels: np.ndarray  # int64 [N]
    classes: int
    get: object  # callable: index -> float32 [H, W, C]
    class_names: list[str] | None = None
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)


def check_labels(y, what: str = "y") -> np.ndarray:
    """Integer class labels >= 0 (floats only when every value is a whole number); one-line errors otherwise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise TteError(f"{what} must be a 1-d array of class labels, got shape {list(y.shape)}")
    if y.dtype.kind == "f":
        bad = y[~np.isfinite(y) | (y != np.round(y))] if y.size else y[:0]
        if bad.size:
            raise TteError(f"{what} must hold integer class labels; it holds {bad[0].item()!r} ({y.dtype})")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise TteError(f"{what} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise TteError(f"{what} holds the negative label {int(y.min())}; labels are class indices 0, 1, ...")
    return y


def _intensities(img: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    return a.astype(np.float32)


def images_from_arrays(x, y, origin: str = "x", label_origin: str = "y") -> Images:
    """``x``: [N, H, W] or [N, H, W, C] (C = 1, 3, 4), uint8 0-255 or float in [0, 1]; ``y``: N labels."""
    x = np.asarray(x)
    y = check_labels(y, label_origin)
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3, 4)):
        raise TteError(f"{origin} must hold N images as [N, H, W] or [N, H, W, C] with C = 1, 3 or 4, got shape "
                       f"{list(x.shape)}")
    if len(x) != len(y):
        raise TteError(f"{origin} holds {len(x)} images but there are {len(y)} labels")
    if len(x) == 0:
        raise TteError(f"{origin} holds no images")
    if x.dtype.kind == "f":
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise TteError(f"{origin}: float images must hold intensities in [0, 1], these range over [{lo:g}, {hi:g}]"
                           + (" (divide by 255, or store them as uint8)" if hi > 1 and np.isfinite(hi) else ""))
    elif x.dtype != np.uint8:
        if x.dtype.kind not in "iu" or x.min() < 0 or x.max() > 255:
            raise TteError(f"{origin}: images must be uint8 0-255 or float in [0, 1], got {x.dtype}")
        x = x.astype(np.uint8)
    return Images(y, int(y.max()) + 1, lambda i: _intensities(x[i], origin), None, origin)


def images_from_npz(path: pathlib.Path) -> Images:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk = "x" if "x" in keys else "images" if "images" in keys else None
            yk = "y" if "y" in keys else "labels" if "labels" in keys else None
            if xk is None or yk is None:
                raise TteError(f"{path}: an .npz of samples holds 'x' (images) and 'y' (labels); it holds "
                               f"{', '.join(sorted(keys)) or 'nothing'}")
            x, y = z[xk], z[yk]
    except TteError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise TteError(f"cannot read '{path}' as an .npz file: {getattr(e, 'strerror', None) or e}") from None
    return images_from_arrays(x, y, f"{path.name}:{xk}", f"{path.name}:{yk}")


def images_from_folder(path: pathlib.Path, channels: int) -> Images:
    """One subfolder per class (sorted by name), images in it (and below it)."""
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TteError(f"'{path}' has no class folders: put each class's images in a folder of its own "
                       f"({path}/cat/1.png, {path}/dog/2.jpg, ...)")
    files, labels = [], []
    for c, d in enumerate(classes):
        found = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise TteError(f"class folder '{d}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [c] * len(found)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise TteError("reading image folders needs Pillow: pip install pillow") from None

    def get(i: int) -> np.ndarray:
        try:
            with Image.open(files[i]) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                return _intensities(np.asarray(im), str(files[i]))
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise TteError(f"cannot read the image '{files[i]}': {e}") from None

    return Images(np.array(labels, np.int64), len(classes), get, [d.name for d in classes], str(path))


def read_images(source, channels: int = 3) -> Images:
    """Images and labels from an image folder or an ``.npz`` file."""
    path = pathlib.Path(os.fspath(source))
    if path.is_dir():
        return images_from_folder(path, channels)
    if not path.exists():
        raise TteError(f"'{source}' does not exist: give an image folder (one subfolder per class) or an .npz file")
    if path.suffix.lower() != ".npz":
        raise TteError(f"'{source}' is neither an image folder nor an .npz file (x: images, y: labels)")
    return images_from_npz(path)


# -- preparing them for the model ----------------------------------------------------------------------------------
def value_range(spec: InputFormat, choice: str = "auto") -> tuple[float, float]:
    """The real-valued range images are mapped to (see the module docstring for ``auto``)."""
    key = str(choice).replace(" ", "").replace("[", "").replace("]", "")
    if key in RANGES:
        return RANGES[key]
    if key != "auto":
        raise TteError(f"value range '{choice}' is not one of auto, {', '.join(RANGES)}")
    lo, hi = (-128 - spec.zero_point) * spec.scale, (127 - spec.zero_point) * spec.scale
    if hi > 2:
        return RANGES["0,255"]
    return RANGES["-1,1"] if lo < -0.1 * hi else RANGES["0,1"]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    try:
        from PIL import Image
    except ImportError:
        raise TteError("resizing images needs Pillow: pip install pillow") from None

    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize((w, h), Image.Resampling.BILINEAR),
                         np.float32) for c in range(img.shape[2])]
    return np.stack(planes, axis=2)


def prepare_one(img: np.ndarray, model: ModelInput, lo_hi: tuple[float, float]) -> np.ndarray:
    """One image (float32 H x W x C in [0, 1]) as the model's int8 input (flat, in its layout)."""
    h, w, c = model.format.hwc
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if c == 1 and img.shape[2] == 3:
        img = (img @ LUMA)[:, :, None].astype(np.float32)
    elif c not in (1, 3):
        raise TteError(f"the model's input has {c} channels; tte data prepares grayscale (1) and RGB (3) images")
    img = _resize(img, h, w)
    if c == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    lo, hi = lo_hi
    x = (np.float32(lo) + img * np.float32(hi - lo)).astype(np.float32)
    if model.format.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return model.quantize(x.reshape(model.format.shape)).reshape(-1)


def check_format(f: InputFormat, data_classes: int, spec: InputFormat, classes: int | None = None,
                 what: str = "the samples") -> None:
    """Refuse samples of format ``f`` for a model whose input is ``spec`` (and that has ``classes`` classes)."""
    if f.sample_bytes != spec.sample_bytes or tuple(f.shape) != tuple(spec.shape):
        raise TteError(f"{what} were packed for an input of shape {list(f.shape)}, the model's is "
                       f"{list(spec.shape)}: pack them again with --model")
    if np.float32(f.scale) != np.float32(spec.scale) or f.zero_point != spec.zero_point:
        raise TteError(f"{what} were quantized for another input (scale {f.scale:.9g}, zero point {f.zero_point}; "
                       f"the model's: {spec.scale:.9g}, {spec.zero_point}): pack them again with --model")
    if f.model_id and spec.model_id and f.model_id != spec.model_id:
        raise TteError(f"{what} were packed for another model file (id {f.model_id:016x}, this model's "
                       f"{spec.model_id:016x}): pack them again with --model")
    if classes is not None and data_classes > classes:
        raise TteError(f"{what} have {data_classes} classes, the model only {classes}: compile it with --classes "
                       f"{data_classes}")


# -- the packed samples --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Samples:
    """Quantized samples and their split: ``inputs`` int8 [count, sample bytes] in the model's input layout,
    ``labels`` int32; the first ``train`` are the training split, in the order training visits them."""

    format: InputFormat
    inputs: np.ndarray
    labels: np.ndarray
    train: int
    classes: int
    value_range: tuple[float, float] = (-1.0, 1.0)
    class_names: list[str] | None = field(default=None, compare=False)

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def test(self) -> int:
        return self.count - self.train

    def describe(self) -> str:
        return (f"{self.count} samples ({self.train} train, {self.test} test), {self.classes} classes, "
                f"{self.format.describe()}, values {self.value_range[0]:g}..{self.value_range[1]:g}")

    def check(self, spec: InputFormat, classes: int | None = None, what: str = "the samples") -> None:
        """Refuse samples prepared for another input (or with labels the model cannot take)."""
        check_format(self.format, self.classes, spec, classes, what)

    def to_bytes(self) -> bytes:
        f = self.format
        shape = list(f.shape) + [0] * (4 - len(f.shape))
        head = _HEADER.pack(MAGIC, VERSION, HEADER_BYTES, self.count, self.train, f.sample_bytes, self.classes,
                            len(f.shape), *shape, f.scale, f.zero_point, LAYOUTS.index(f.layout), f.model_id,
                            *self.value_range)
        records = np.empty((self.count, 4 + f.sample_bytes), np.uint8)
        records[:, :4] = self.labels.astype("<i4").view(np.uint8).reshape(-1, 4)
        records[:, 4:] = self.inputs.view(np.uint8).reshape(self.count, -1)
        return head + records.tobytes()

    def write(self, path: str | os.PathLike) -> None:
        """Write the sample file (a temporary file renamed over ``path``)."""
        path = pathlib.Path(os.fspath(path))
        tmp = path.with_name(f".{path.name}.tte-tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(self.to_bytes())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise TteError(f"cannot write '{path}': {e.strerror or e}") from None

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "the sample file") -> Samples:
        head = parse_header(data[:HEADER_BYTES], len(data), what)
        count, sample, classes = head.count, head.format.sample_bytes, head.classes
        rec = np.frombuffer(data, np.uint8, offset=HEADER_BYTES).reshape(count, 4 + sample)
        labels = np.ascontiguousarray(rec[:, :4]).view("<i4").reshape(-1).astype(np.int32)
        if count and (labels.min() < 0 or labels.max() >= classes):
            raise TteError(f"{what} holds labels outside [0, {classes})")
        inputs = np.ascontiguousarray(rec[:, 4:]).view(np.int8)
        return cls(head.format, inputs, labels, head.train, classes, head.value_range)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Samples:
        try:
            data = pathlib.Path(os.fspath(path)).read_bytes()
        except OSError as e:
            raise TteError(f"cannot read '{path}': {e.strerror or e}") from None
        return cls.from_bytes(data, f"'{path}'")


@dataclass(frozen=True)
class Header:
    """A sample file's header."""

    format: InputFormat
    count: int
    train: int
    classes: int
    value_range: tuple[float, float]


def parse_header(head: bytes, size: int, what: str = "the sample file") -> Header:
    """The header of a sample file of ``size`` bytes (checked against the size)."""
    if len(head) < HEADER_BYTES or head[:8] != MAGIC:
        raise TteError(f"{what} is not a sample file written by `tte data pack`")
    (_, version, header, count, train, sample, classes, rank, *rest) = _HEADER.unpack_from(head)
    shape, (scale, zp, layout, mid, lo, hi) = rest[:4], rest[4:]
    if version != VERSION or header != HEADER_BYTES:
        raise TteError(f"{what} is a sample file of format version {version}; this tte reads version {VERSION}")
    if not 1 <= rank <= 4 or layout >= len(LAYOUTS) or train > count or not classes:
        raise TteError(f"{what} has a corrupted header")
    shape = tuple(shape[:rank])
    if int(np.prod(shape)) != sample:
        raise TteError(f"{what} has a corrupted header (shape {list(shape)}, {sample} bytes per sample)")
    if size != HEADER_BYTES + count * (4 + sample):
        raise TteError(f"{what} is truncated or has trailing bytes: {size:,} bytes, its header says "
                       f"{HEADER_BYTES + count * (4 + sample):,}")
    fmt = InputFormat(shape, LAYOUTS[layout], float(np.float32(scale)), int(zp), int(mid))
    return Header(fmt, int(count), int(train), int(classes), (float(lo), float(hi)))


def read_header(path) -> Header:
    """The header of the sample file at ``path`` (the records are not read)."""
    try:
        with open(path, "rb") as fh:
            return parse_header(fh.read(HEADER_BYTES), os.fstat(fh.fileno()).st_size, f"'{path}'")
    except OSError as e:
        raise TteError(f"cannot read '{path}': {e.strerror or e}") from None


def is_sample_file(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == MAGIC
    except OSError:
        return False


def split_indices(n: int, test_fraction: float | None = None, split: int | None = None, limit: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: shuffled with ``seed``, the first ``limit`` kept, then split."""
    if test_fraction is not None and split is not None:
        raise TteError("give --test-fraction or --split, not both")
    if limit is not None:
        if int(limit) != limit or limit < 1:
            raise TteError(f"--limit must be a positive whole number of samples, got {limit}")
        n_used = min(n, int(limit))
    else:
        n_used = n
    if split is not None:
        if int(split) != split or not 0 <= split <= n_used:
            raise TteError(f"--split must be a number of training samples in [0, {n_used}], got {split}")
        n_train = int(split)
    else:
        f = 0.2 if test_fraction is None else float(test_fraction)
        if not 0 <= f <= 1:
            raise TteError(f"--test-fraction must be in [0, 1], got {test_fraction}")
        n_train = n_used - int(round(f * n_used))
    if not 0 <= seed < 2**63:
        raise TteError(f"--seed must be in [0, 2^63), got {seed}")
    order = np.random.default_rng(seed).permutation(n)[:n_used]
    return order[:n_train], order[n_train:]


def pack(source, model, *, test_fraction: float | None = None, split: int | None = None,
         limit: int | None = None, value_range_choice: str = "auto", seed: int = 0, y=None,
         progress=None) -> Samples:
    """Prepare ``source`` for ``model`` (see the module docstring): an image folder, an ``.npz`` path, or an array
    of images with their labels in ``y``.  ``progress(done, total)`` is called as images are prepared."""
    m = model if isinstance(model, ModelInput) else model_input(model)
    _, _, channels = m.format.hwc
    images = images_from_arrays(source, y) if y is not None else read_images(source, channels)
    train_idx, test_idx = split_indices(len(images), test_fraction, split, limit, seed)
    order = np.concatenate([train_idx, test_idx])
    lo_hi = value_range(m.format, value_range_choice)
    inputs = np.empty((len(order), m.format.sample_bytes), np.int8)
    for k, i in enumerate(order):
        inputs[k] = prepare_one(images.get(int(i)), m, lo_hi)
        if progress is not None:
            progress(k + 1, len(order))
    return Samples(m.format, inputs, images.labels[order].astype(np.int32), len(train_idx), images.classes, lo_hi,
                   images.class_names)


def load_samples(source, model, **options) -> Samples:
    """A sample file written by `tte data pack` (checked against ``model``), or :func:`pack` of ``source``."""
    m = model if isinstance(model, ModelInput) else model_input(model)
    if not isinstance(source, np.ndarray) and options.get("y") is None and is_sample_file(source):
        s = Samples.read(source)
        s.check(m.format, what=f"the samples in '{source}'")
        return s
    return pack(source, m, **options)
