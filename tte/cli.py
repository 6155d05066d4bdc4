"""The ``tte`` command line."""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings

import click

from .errors import TteError
from .ir.facts import ARITHMETICS
from .units import MAX_CLASSES, check_int
from .version import __version__


def parse_input_shapes(specs: tuple[str, ...]):
    """``--input-shape`` values: ``1,3,128,128`` (the only input) or ``NAME=1,3,128,128``."""
    if not specs:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    single = None
    for spec in specs:
        name, _, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            raise click.BadParameter(f"'{spec}' is not a shape like 1,3,128,128 or input=1,3,128,128",
                                     param_hint="--input-shape") from None
        if not shape:
            raise click.BadParameter(f"'{spec}' gives no dimensions", param_hint="--input-shape")
        if name:
            shapes[name] = shape
        else:
            single = shape
    if single is not None:
        if shapes:
            raise click.BadParameter("mix of named and unnamed shapes", param_hint="--input-shape")
        return single
    return shapes


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {message}", err=True)


def size_option(name: str, default: str, what: str):
    return click.option(name, default=default, show_default=True, metavar="SIZE",
                        help=f"{what}: a number with a unit, 256k, 320KB, 1m (K = 1024); a number without a unit is "
                             f"bytes and must be at least 1024 (write 512B for less).")


def classes_option(f):
    return click.option("--classes", type=int, default=None, metavar="N",
                        callback=lambda ctx, param, v: None if v is None else check_int(v, "--classes", 1, MAX_CLASSES),
                        help=f"Replace the classifier with a new N-class head (1 to {MAX_CLASSES}; default: keep the "
                             f"model's).")(f)


class TteGroup(click.Group):
    """Turns every :class:`TteError` into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except TteError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except OSError as e:  # a file or directory the user named: one line, as every other problem of theirs
            where = f": '{e.filename}'" if getattr(e, "filename", None) else ""
            click.echo(f"error: {e.strerror or e}{where}", err=True)
            ctx.exit(1)
        except RecursionError:
            click.echo("error: the input is nested too deeply to be read", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as e:  # a bug in tte, not in the user's input
            if os.environ.get("TTE_DEBUG"):
                traceback.print_exc()
            click.echo(f"internal error: {type(e).__name__}: {e} (a bug in tte; rerun with TTE_DEBUG=1 for "
                       f"the traceback and report it)", err=True)
            ctx.exit(70)


@click.group(cls=TteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tte")
def main() -> None:
    """tte, the tiny training engine: compile int8 CNNs into training loops for microcontrollers.

    Models are int8-quantized ONNX files (QDQ or QOperator form, as onnxruntime's quantize_static or
    tf2onnx write them) or TFLite files (.tflite, full-integer, as TFLite's converter writes them).
    Run `tte COMMAND --help` for each command.
    """


favor_option = click.option(
    "--favor", type=click.Choice(["memory", "speed"]), default="memory", show_default=True,
    help="memory: every memory transformation on, the lowest peak; speed: the fastest program that fits --sram (prefix "
         "unpatched, block backward unfused, up to 32 KB of kernel scratch, where it fits; same numerics and scheme).")
stream_option = click.option(
    "--stream-input", "stream_input", is_flag=True,
    help="Hold no input in the arena: the first frozen layers read the int8 input in rows from a row source the "
         "firmware gives (tte_train_step_rows; each row once, top down), e.g. a camera's lines or a file; "
         "tte_train_step_s8 reads a whole input where it lies.  Saves the input's bytes (48 KB at 3x128x128).")
arithmetic_option = click.option(
    "--arithmetic", type=click.Choice(list(ARITHMETICS)), default=None,
    help="How int8 ops requantize. onnxruntime: float32 multipliers rounded half to even, as onnxruntime's int8 "
         "kernels (the default for ONNX files). tflite: TFLite's fixed-point multipliers and per-op integer "
         "algorithms, bit-exact with TFLite's reference kernels (the default for .tflite files). tflite-micro: what "
         "TFLite Micro and CMSIS-NN run on a device, tflite except fully connected layers (requantized like convs) "
         "and LOGISTIC (TFLite Micro's integer algorithm); choose it to train with the arithmetic the model runs "
         "with on the device (ONNX files too).")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME=]D0,D1,...",
              help="Fix a dynamic input shape, e.g. 1,3,128,128 or input=1,3,128,128 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
@click.option("--dump-ir", is_flag=True, help="Print the lifted IR as text instead of the table.")
@arithmetic_option
def inspect(model: str, input_shape: tuple[str, ...], as_json: bool, dump_ir: bool, arithmetic: str | None) -> None:
    """Show MODEL layer by layer: shapes, kernel/stride/groups, parameters, MACs, output quantization.

    Totals: parameters (int8 weights + int32 biases), MACs and the peak int8 activation memory of
    one inference (all activations live at once, no in-place reuse).
    """
    from .frontend import load
    from .inspect import inspect as run_inspect

    g = load(model, input_shape=parse_input_shapes(input_shape), arithmetic=arithmetic)
    if dump_ir:
        click.echo(g.dump())
        return
    report = run_inspect(g)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    from .report import print_inspect

    print_inspect(report)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@size_option("--sram", "256k", "SRAM budget, including the 9 KB kept for stack, heap and C library")
@size_option("--flash", "1m", "Flash budget")
@click.option("--scheme", default="auto", show_default=True, metavar="FILE|full|bias-only|last-K|auto",
              help="What trains: a sparse-update scheme JSON file (the paper's format), a preset, or auto (no data "
                   "needed): the full update if it fits, else the weights of the last 8 expanding 1x1 convs at 1/8 of "
                   "their channels, raised to 1/4, 1/2 or 1 where that fits, last first, then as many more biases "
                   "(--explain shows each step).")
@classes_option
@click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME=]D0,D1,...",
              help="Fix a dynamic input shape.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--explain", is_flag=True, help="Also print what each compiler pass did or why it did not fire, and "
                                              "each step of --scheme auto.")
@favor_option
@stream_option
@click.option("--timeline", is_flag=True, help="Also print the arena timeline (one row per step).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the arena timeline as a picture (needs the 'plot' extra: matplotlib).")
@arithmetic_option
def plan(model, sram, flash, scheme, classes, input_shape, as_json, explain, favor, stream_input, timeline, plot_path,
         arithmetic) -> None:
    """Plan the memory of one training step of MODEL and check it against the budgets.

    Compiles the training graph (autodiff, pruning, fusion, reordering), plans one static arena and
    reports every byte: the arena, trained parameters and optimizer state in SRAM, frozen parameters
    and code in flash, and the SRAM kept for stack, heap and C library (the same accounting and the same
    --scheme auto as `tte compile`).  Exits 1 with one line saying by how much when the plan does not fit.
    """
    from .frontend import load
    from .plan import plan as make
    from .units import parse_size

    budget_sram, budget_flash = parse_size(sram, "--sram"), parse_size(flash, "--flash")
    g = load(model, input_shape=parse_input_shapes(input_shape), arithmetic=arithmetic)
    p = make(g, budget_sram, budget_flash, scheme=scheme, classes=classes, favor=favor, stream_input=stream_input)
    if as_json:
        d = p.to_dict()
        if explain:
            d["passes"] = p.program.pass_log
            d["auto"] = p.auto_log
        click.echo(json.dumps(d, indent=2))
    else:
        from .report import print_plan

        print_plan(p, explain=explain, timeline=timeline)
    if plot_path:
        from .report import plot_timeline

        plot_timeline(p, plot_path)
    problem = p.problem()
    if problem:
        raise TteError(problem)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(),
              help="Directory to write the C sources, Makefile and memory report into: a new or empty one, or one "
                   "tte wrote before (it lists its files in tte_manifest.json); only tte's own files are written.")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that tte did not write (its other "
                                            "files are left alone; tte's own are replaced).")
@size_option("--sram", "256k", "SRAM budget, including the 9 KB kept for stack, heap and C library")
@size_option("--flash", "1m", "Flash budget")
@click.option("--scheme", default="auto", show_default=True, metavar="FILE|full|bias-only|last-K|auto",
              help="What trains (see `tte plan --help`).")
@classes_option
@click.option("--lr", type=float, default=0.005, show_default=True, help="SGD learning rate.")
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD momentum.")
@click.option("--rounding", type=click.Choice(["stochastic", "nearest", "trunc", "accumulate"]),
              default="stochastic", show_default=True, help="How integer parameters absorb fractional steps.")
@click.option("--no-qas", is_flag=True, help="Disable quantization-aware scaling (the naive int8 baseline).")
@favor_option
@stream_option
@click.option("--target", type=click.Choice(["host", "cortex-m4", "cortex-m7"]), default="host", show_default=True,
              help="What the printed build command targets (the Makefile builds all of them).")
@click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME=]D0,D1,...",
              help="Fix a dynamic input shape.")
@arithmetic_option
def compile(model, out_dir, force, sram, flash, scheme, classes, lr, momentum, rounding, no_qas, favor,
            stream_input, target, input_shape, arithmetic) -> None:
    """Compile MODEL into a C training loop in OUTPUT: tte_model.h / tte_model.c (tte_train_step_s8,
    tte_infer_s8, tte_predict, tte_tensors, tte_state_save / tte_state_load), the runtime, a demo main, a
    Makefile, memory.txt, and what `tte export` needs (tte_compile.json and tte_source.onnx).

    The plan is checked against --sram / --flash first: a model that does not fit fails here, with the
    amount and the largest contributors, before any C is written.
    """
    from .codegen.outdir import check
    from .codegen.project import write_project
    from .frontend import load
    from .plan import plan as make
    from .units import parse_size

    budget_sram, budget_flash = parse_size(sram, "--sram"), parse_size(flash, "--flash")
    check(out_dir, force)  # refuse a directory tte may not write into before the work, not after it
    g = load(model, input_shape=parse_input_shapes(input_shape), arithmetic=arithmetic)
    # the same plan as `tte plan`: the step and the SRAM kept for stack, heap and C library must fit --sram
    p = make(g, budget_sram, budget_flash, scheme=scheme, classes=classes, lr=lr, momentum=momentum,
             rounding=rounding, qas=not no_qas, favor=favor, stream_input=stream_input).check()
    files = write_project(p.program, p, out_dir, force=force)
    from .report import compile_summary

    click.echo(compile_summary(p, out_dir, len(files)))
    build = "make run" if target == "host" else f"make {target}"
    click.echo(f"build: make -C {out_dir}{'' if target == 'host' else ' ' + target}  ({build})")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--target", type=click.Choice(["host", "cortex-m4", "cortex-m7"]), default="host", show_default=True,
              help="host: build with gcc and run; cortex-m4 / cortex-m7: build with arm-none-eabi-gcc and run "
                   "under QEMU (mps2-an386 / mps2-an500).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Train on a sample file written by `tte data pack` for this model (read by semihosting under "
                   "QEMU) instead of the built-in pseudo-random inputs; prints the mean loss and the test accuracy "
                   "per epoch.")
@click.option("--epochs", type=click.IntRange(1, 1_000_000), default=None, help="Epochs over --data (default 1).")
def run(directory, target, data, epochs) -> None:
    """Build and run the demo of a `tte compile` output DIRECTORY: prints the losses (with --data: the mean loss
    and held-out accuracy per epoch), the exit code, and on Cortex-M the flash / RAM use, the measured stack peak
    and instructions per step (QEMU -icount).  The demo saves the trained state to DIRECTORY/tte_state.bin."""
    from .device import run_demo

    result = run_demo(directory, target, data=data, epochs=epochs)
    click.echo(result.output.rstrip())
    click.echo(result.summary())
    if result.exit_code != 0:
        raise TteError(f"the demo exited with code {result.exit_code} on {target}")


# -- tte export: a device's state -> ONNX ----------------------------------------------------------------------------
def _is_onnx_file(path: str) -> bool:
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def _check_export_target(output: str, force: bool) -> None:
    """An existing OUTPUT is replaced only when it is an ONNX model and --force is given."""
    if os.path.isdir(output):
        raise TteError(f"'{output}' is a directory; give the file name of the ONNX model to write")
    if os.path.lexists(output):
        if not _is_onnx_file(output):
            raise TteError(f"refusing to overwrite '{output}': it is not an ONNX model (tte replaces only ONNX "
                           "files, and only with --force)")
        if not force:
            raise TteError(f"'{output}' exists; pass --force to overwrite it")


def program_of_directory(directory: str):
    """The program a `tte compile` output directory was compiled from, rebuilt from its copy of the source
    model and its compile record (checked against the recorded fingerprint)."""
    from .autodiff.scheme import SparseScheme
    from .codegen.project import read_record
    from .pipeline import compile as compile_program

    record, source = read_record(directory)
    name = record.get("source_name") or source.name
    if source.suffix == ".tflite":
        raise TteError(f"'{directory}' was compiled from the TFLite model '{name}'; tte export writes ONNX and "
                       "cannot export TFLite models (not supported yet)")
    o = record["options"]
    s = o["scheme"]
    scheme = SparseScheme(s["name"], s["bias_last"], {int(k): float(v) for k, v in s["weights"].items()},
                          all_weights=s["all_weights"])
    program = compile_program(source, scheme=scheme, classes=o["classes"], lr=o["lr"], momentum=o["momentum"],
                              qas=o["qas"], rounding=o["rounding"], seed=o["seed"],
                              input_shape={k: tuple(v) for k, v in o["input_shape"].items()},
                              arithmetic=o["arithmetic"], optimize=o["optimize"])
    if f"{program.fingerprint:016x}" != record["fingerprint"]:
        raise TteError(f"recompiling '{name}' from '{directory}' gave another program (fingerprint "
                       f"{program.fingerprint:016x}, the directory's is {record['fingerprint']}): it was written by "
                       f"tte {record.get('tte_version')}, this is tte {__version__}; compile the model again")
    return program


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--state", "state_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The state the device saved with tte_state_save: one blob, or a dump of its two-slot storage "
                   "(the demo's `make run` writes DIRECTORY/tte_state.bin).")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The trained ONNX model to write.  An existing file is replaced only with --force, and only "
                   "if it is an ONNX model; any other file is never overwritten.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing ONNX model.")
def export(directory, state_file, output, force) -> None:
    """Write the model a device trained as ONNX: the source model of DIRECTORY (a `tte compile` output, which
    keeps a copy of it and the compile options, so the original file may be gone) with the trained tensors of
    --state, un-permuted into the model's channel order.

    The state must come from the program compiled in DIRECTORY (its fingerprint is checked); a state of another
    model, of another format version or a corrupted one is refused.  Of a storage holding two slots, the newest
    complete state is taken.  OUTPUT is written atomically (temporary file, fsync, rename).
    """
    _check_export_target(output, force)
    program = program_of_directory(directory)
    program.load_state(state_file)
    program.save(output)
    click.echo(f"wrote {output}: the trained model after {program.steps} steps (state {state_file})")


# -- tte data pack, tte train: real samples -------------------------------------------------------------------------
def _sample_options(f):
    """How `tte data pack` and `tte train` prepare and split samples (tte.data)."""
    f = click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                     help="Seed of the shuffle before the split (tte train: also of the new head and of stochastic "
                          "rounding).")(f)
    f = click.option("--range", "value_range", type=click.Choice(["auto", "-1,1", "0,1", "0,255"]), default="auto",
                     show_default=True,
                     help="The values the model expects for black..white: -1,1 (pixel / 127.5 - 1), 0,1 or 0,255; "
                          "auto: from the input quantization's range (-1,1 when it reaches well below 0, 0,255 when "
                          "it reaches past 2, else 0,1).")(f)
    f = click.option("--limit", type=click.IntRange(1), default=None, metavar="N",
                     help="Use N samples (after the shuffle), not all.")(f)
    f = click.option("--split", type=click.IntRange(0), default=None, metavar="N",
                     help="N samples train, the rest are held out for testing.")(f)
    return click.option("--test-fraction", type=click.FloatRange(0, 1), default=None, metavar="F",
                        help="Hold out this fraction of the samples for testing [default: 0.2].")(f)


def progress_bar(*args, **kwargs):
    from .report import progress_bar as bar

    return bar(*args, **kwargs)


def _check_new_file(output: str, force: bool, is_ours, what: str) -> None:
    """An existing OUTPUT is replaced only with --force, and only if tte wrote it (``is_ours``)."""
    if os.path.isdir(output):
        raise TteError(f"'{output}' is a directory; give the name of the {what} to write")
    if os.path.lexists(output):
        if not is_ours(output):
            raise TteError(f"refusing to overwrite '{output}': it is not a {what} (tte replaces only its own files, "
                           "and only with --force)")
        if not force:
            raise TteError(f"'{output}' exists; pass --force to overwrite it")


@main.group()
def data() -> None:
    """Prepare samples for training: `tte data pack`."""


@data.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--model", required=True, type=click.Path(exists=True),
              help="The model the samples are for (ONNX or TFLite file, or a `tte compile` output directory): its "
                   "input shape, layout and quantization.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The sample file to write.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is a sample file.")
@_sample_options
def pack(source, model, output, force, test_fraction, split, limit, value_range, seed) -> None:
    """Pack SOURCE (an image folder with one subfolder per class, or an .npz holding x: images and y: labels) into
    a sample file for MODEL: each image resized (bilinear) to the model's H x W, made grayscale or RGB as it needs,
    scaled to --range, quantized with its input scale and zero point, in its input layout; shuffled and split into
    training and test samples.  The emitted demo trains on it: `make run DATA=samples.bin EPOCHS=N`,
    `tte run DIR --target cortex-m4 --data samples.bin`.  The format is described in tte/data.py."""
    from .data import is_sample_file
    from .data import pack as pack_samples

    _check_new_file(output, force, is_sample_file, "sample file")
    with progress_bar(transient=True) as bar:
        task = bar.add_task("preparing", total=None)
        samples = pack_samples(source, model, test_fraction=test_fraction, split=split, limit=limit,
                               value_range_choice=value_range, seed=seed,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    samples.write(output)
    click.echo(f"wrote {output}: {samples.describe()}; {os.path.getsize(output):,} bytes")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "source", required=True, type=click.Path(exists=True),
              help="An image folder (one subfolder per class), an .npz (x: images, y: labels) or a sample file of "
                   "`tte data pack`.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The trained ONNX model to write (atomically).  An existing file is replaced only with --force, and "
                   "only if it is an ONNX model.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing ONNX model.")
@click.option("--classes", type=click.IntRange(1, MAX_CLASSES), default=None, metavar="N",
              help="Classes of the new head [default: the number of classes in the data].")
@click.option("--scheme", default="auto", show_default=True, metavar="FILE|full|bias-only|last-K|auto",
              help="What trains (see `tte plan --help`).")
@click.option("--sram", default="256k", show_default=True, metavar="SIZE",
              help="SRAM budget of the device (as `tte compile`: the program is the one it would build).")
@click.option("--flash", default="1m", show_default=True, metavar="SIZE", help="Flash budget.")
@click.option("--epochs", type=click.IntRange(1, 1_000_000), default=1, show_default=True, help="Epochs.")
@click.option("--lr", type=float, default=0.005, show_default=True, help="SGD learning rate.")
@click.option("--calibrate", type=click.IntRange(0, None), default=0, show_default=True, metavar="N",
              help="Calibrate the new head on the first N training samples (initial logits that spread whatever the "
                   "scale of the model's features; for models with small features, such as the MLPerf Tiny ones). "
                   "0: the head of `tte compile`.")
@_sample_options
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the training curve (loss per step, test accuracy per epoch) as a picture (needs the 'plot' "
                   "extra: matplotlib).")
def train(model, source, output, force, classes, scheme, sram, flash, epochs, lr, calibrate, test_fraction, split,
          limit, value_range, seed, plot_path) -> None:
    """Train MODEL on --data on this machine with the emitted C (the integers a device trains: the program of
    `tte compile` with the same options), testing on held-out samples after each epoch, and write the trained
    model as ONNX.  Python: tte.train(MODEL, DATA, ...) does the same."""
    from .frontend import is_tflite
    from .trainer import plot_history
    from .trainer import train as run_training

    if is_tflite(model):  # refuse before training, not after it
        raise TteError(f"{model}: tte train writes the trained model as ONNX, which a .tflite source cannot become "
                       f"yet; train on the device (tte compile, tte run --data) or from Python (tte.train(...) without "
                       f"saving)")
    _check_export_target(output, force)
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise TteError("--plot needs matplotlib: pip install 'tte[plot]'") from None
    state = {"bar": None, "task": None}

    def on_prepare(done, total):
        if state["bar"] is None:
            state["bar"] = progress_bar(transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("preparing", total=total)
        state["bar"].update(state["task"], completed=done)
        if done == total:
            state["bar"].stop()
            state["bar"] = None

    bars = {}

    def on_step(epoch, step, steps, loss):
        if epoch not in bars:
            from rich.progress import TextColumn

            bars[epoch] = progress_bar(None, False, TextColumn("loss {task.fields[loss]:.3f}"))
            bars[epoch].start()
            bars[epoch].add_task(f"epoch {epoch}/{epochs}", total=steps, loss=loss, total_loss=0.0)
        bar = bars[epoch]
        task = bar.tasks[0]
        total = task.fields["total_loss"] + loss
        bar.update(task.id, completed=step, loss=total / step, total_loss=total)
        if step == steps:
            bar.stop()

    result = run_training(model, source, classes=classes, scheme=scheme, sram=sram, flash=flash, epochs=epochs,
                          lr=lr, seed=seed, test_fraction=test_fraction, split=split, limit=limit,
                          value_range=value_range, calibrate=calibrate, on_step=on_step, on_prepare=on_prepare,
                          on_epoch=lambda e: click.echo(e.line()))
    s, p = result.samples, result.program
    result.save(output)
    click.echo(f"wrote {output}: {p.forward.name} trained {epochs} epoch{'s' * (epochs != 1)} of {s.train} steps "
               f"(scheme {p.plan.scheme.name}, lr {lr:g}), test accuracy {result.history[-1].correct}/{s.test} "
               f"({100 * result.accuracy:.1f}%)")
    if plot_path:
        plot_history(result.history, plot_path, f"{os.path.basename(model)}: {s.train} train / {s.test} test samples")
        click.echo(f"wrote {plot_path}")


# -- tte search: contribution analysis and evolutionary search of a scheme ------------------------------------------
def _at_least(low: int, what: str):
    return lambda ctx, param, v: None if v is None else check_int(v, what, low)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "source", required=True, type=click.Path(),
              help="An image folder (one subfolder per class), an .npz (x: images, y: labels) or a sample file of "
                   "`tte data pack`; only its training split is used (the test split is never looked at).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The scheme JSON to write (the published format; atomically).  An existing file is replaced only "
                   "with --force, and only if it is a scheme.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing scheme file.")
@size_option("--sram", "256k", "SRAM budget, including the 9 KB kept for stack, heap and C library")
@size_option("--flash", "1m", "Flash budget")
@click.option("--classes", type=int, default=None, metavar="N", callback=_at_least(1, "--classes"),
              help="Classes of the new head [default: the number of classes in the data].")
@click.option("--workers", type=int, default=1, show_default=True, metavar="N", callback=_at_least(1, "--workers"),
              help="Run trials in N processes on this machine.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run trials as Ray tasks (pip install 'tte[ray]'): a cluster's address, 'auto' (the running "
                   "cluster, else a new local instance) or 'local' (a new local instance of --workers CPUs).")
@click.option("--max-trials", type=int, default=100, show_default=True, metavar="K",
              callback=_at_least(1, "--max-trials"),
              help="Run at most K trials: the baseline, the bias curve, each layer at its largest ratio from the last "
                   "layer back, then the smaller ratios of the layers that helped.")
@click.option("--trial-samples", type=int, default=400, show_default=True, metavar="N",
              callback=_at_least(1, "--trial-samples"), help="Training samples of each trial's fine-tune.")
@click.option("--eval-samples", type=int, default=400, show_default=True, metavar="N",
              callback=_at_least(1, "--eval-samples"), help="Held-out training samples each trial is scored on.")
@click.option("--epochs", type=int, default=3, show_default=True, callback=_at_least(1, "--epochs"),
              help="Epochs of each trial's fine-tune.")
@click.option("--lr", type=float, default=0.005, show_default=True,
              help="Peak SGD learning rate of the trials (a 5 % warm-up, then cosine decay).")
@click.option("--population", type=int, default=50, show_default=True, callback=_at_least(2, "--population"),
              help="Population of the evolutionary search.")
@click.option("--generations", type=int, default=20, show_default=True, callback=_at_least(0, "--generations"),
              help="Generations of the evolutionary search.")
@click.option("--finalists", type=int, default=6, show_default=True, metavar="N", callback=_at_least(1, "--finalists"),
              help="Fine-tune N schemes whole (the evolution's best, simpler ones) on 2000 training samples, score "
                   "on 1000 more, keep the least SRAM within a standard error of the best (1: the evolution's).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
              help="The trial cache to resume from and add to (JSON lines) [default: OUTPUT.trials.jsonl].")
@_sample_options
def search(model, source, output, force, sram, flash, classes, workers, ray_address, max_trials, trial_samples,
           eval_samples, epochs, lr, population, generations, finalists, cache_path, test_fraction, split, limit,
           value_range, seed) -> None:
    """Search a sparse-update scheme for MODEL that fits --sram / --flash, from short fine-tunes on --data.

    Measures the held-out accuracy that training the biases of the last k layers, and each layer's weights at
    channel ratios 1/8, 1/4, 1/2 and 1, add to training the classifier alone (trials in C, as `tte train` trains),
    then runs an evolutionary search for the scheme with the largest summed contribution whose SRAM and flash, by
    the planner (the figures `tte plan` prints), fit; of it and a few simpler finalists fine-tuned whole, the one
    with the least SRAM whose score is within one standard error of the best wins.  Trials are cached.
    The same seed gives the same scheme with 1 worker, N workers or Ray.  Python: tte.search(MODEL, DATA, ...).
    """
    from .search import is_scheme_file
    from .search import search as run_search

    if not os.path.exists(source):
        raise TteError(f"--data '{source}' does not exist: give an image folder, an .npz or a sample file")
    _check_new_file(output, force, is_scheme_file, "scheme file")
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise TteError(f"cannot write '{output}': its directory does not exist")
    cache_path = cache_path or f"{output}.trials.jsonl"
    with progress_bar(transient=True) as bar:
        tasks = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task("preparing" if stage == "prepare" else stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run_search(model, source, sram=sram, flash=flash, classes=classes, workers=workers, ray=ray_address,
                            max_trials=max_trials, train_samples=trial_samples, eval_samples=eval_samples,
                            epochs=epochs, lr=lr, seed=seed, population=population, generations=generations,
                            finalists=finalists, cache=cache_path, test_fraction=test_fraction, split=split,
                            limit=limit, value_range=value_range, progress=progress)
    result.save(output)
    result.print()
    click.echo(f"wrote {output} (trials: {cache_path})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
