"""The ``tte`` command line."""

from __future__ import annotations

import json
import os
import sys
import traceback

import click

from .errors import TteError
from .ir.facts import ARITHMETICS
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


class TteGroup(click.Group):
    """Turns every :class:`TteError` into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TteError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
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
    """tte, the tiny training engine: compile int8 ONNX CNNs into training loops for microcontrollers.

    Models are int8-quantized ONNX files (QDQ or QOperator form, as onnxruntime's quantize_static
    writes them).  Run `tte COMMAND --help` for each command.
    """


def arithmetic_option(f):
    return click.option(
        "--arithmetic", type=click.Choice(list(ARITHMETICS)), default=None,
        help="How int8 ops requantize: tflite (TFLite's fixed-point multiplier and shift, bit-exact with TFLite "
             "and TFLite Micro; the default for .tflite files) or onnxruntime (float32 multiplier, round half to "
             "even; the default for ONNX).")(f)


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
@click.option("--sram", default="256k", show_default=True, metavar="SIZE",
              help="SRAM budget (256k, 320KB, 1m, or bytes; K = 1024).")
@click.option("--flash", default="1m", show_default=True, metavar="SIZE", help="Flash budget.")
@click.option("--scheme", default="auto", show_default=True, metavar="FILE|full|bias-only|last-K|auto",
              help="What trains: a sparse-update scheme JSON file (the paper's format), a preset, or auto: the "
                   "largest scheme of the family 'biases of the last b layers, weights of the last w' that fits.")
@click.option("--classes", type=int, default=None, metavar="N",
              help="Replace the classifier with a new N-class head (default: keep the model's).")
@click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME=]D0,D1,...",
              help="Fix a dynamic input shape.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--explain", is_flag=True, help="Also print what each compiler pass did or why it did not fire.")
@click.option("--timeline", is_flag=True, help="Also print the arena timeline (one row per step).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the arena timeline as a picture (needs the 'plot' extra: matplotlib).")
@arithmetic_option
def plan(model, sram, flash, scheme, classes, input_shape, as_json, explain, timeline, plot_path, arithmetic) -> None:
    """Plan the memory of one training step of MODEL and check it against the budgets.

    Compiles the training graph (autodiff, pruning, fusion, reordering), plans one static arena and
    reports every byte: the arena, trained parameters and optimizer state in SRAM, frozen parameters
    and code in flash.  Exits 1 with one line saying by how much when the plan does not fit.
    """
    from .frontend import load
    from .plan import plan as make
    from .units import parse_size

    budget_sram, budget_flash = parse_size(sram, "--sram"), parse_size(flash, "--flash")
    g = load(model, input_shape=parse_input_shapes(input_shape), arithmetic=arithmetic)
    p = make(g, budget_sram, budget_flash, scheme=scheme, classes=classes)
    if as_json:
        d = p.to_dict()
        if explain:
            d["passes"] = p.program.pass_log
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
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the C sources, Makefile and memory report into.")
@click.option("--sram", default="256k", show_default=True, metavar="SIZE", help="SRAM budget.")
@click.option("--flash", default="1m", show_default=True, metavar="SIZE", help="Flash budget.")
@click.option("--scheme", default="auto", show_default=True, metavar="FILE|full|bias-only|last-K|auto",
              help="What trains (see `tte plan --help`).")
@click.option("--classes", type=int, default=None, metavar="N", help="Replace the classifier with a new N-class head.")
@click.option("--lr", type=float, default=0.005, show_default=True, help="SGD learning rate.")
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD momentum.")
@click.option("--rounding", type=click.Choice(["stochastic", "nearest", "trunc", "accumulate"]),
              default="stochastic", show_default=True, help="How integer parameters absorb fractional steps.")
@click.option("--no-qas", is_flag=True, help="Disable quantization-aware scaling (the naive int8 baseline).")
@click.option("--target", type=click.Choice(["host", "cortex-m4", "cortex-m7"]), default="host", show_default=True,
              help="What the printed build command targets (the Makefile builds all of them).")
@click.option("--input-shape", "input_shape", multiple=True, metavar="[NAME=]D0,D1,...",
              help="Fix a dynamic input shape.")
@arithmetic_option
def compile(model, out_dir, sram, flash, scheme, classes, lr, momentum, rounding, no_qas, target,
            input_shape, arithmetic) -> None:
    """Compile MODEL into a C training loop in OUTPUT: tte_model.h / tte_model.c (tte_train_step_s8,
    tte_infer_s8, tte_predict, tte_tensors, tte_state_save / tte_state_load), the runtime, a demo main, a
    Makefile, memory.txt, and what `tte export` needs (tte_compile.json and tte_source.onnx).

    The plan is checked against --sram / --flash first: a model that does not fit fails here, with the
    amount and the largest contributors, before any C is written.
    """
    from .codegen.project import RUNTIME_RESERVE, write_project
    from .frontend import load
    from .plan import plan as make
    from .units import parse_size

    budget_sram, budget_flash = parse_size(sram, "--sram"), parse_size(flash, "--flash")
    g = load(model, input_shape=parse_input_shapes(input_shape), arithmetic=arithmetic)
    # the device also needs stack, heap and C library statics: plan the step inside what is left
    p = make(g, max(budget_sram - RUNTIME_RESERVE, 1), budget_flash, scheme=scheme, classes=classes, lr=lr,
             momentum=momentum, rounding=rounding, qas=not no_qas)
    problem = p.problem()
    if problem:
        raise TteError(f"{problem} ({RUNTIME_RESERVE / 1024:.0f} KB of --sram {budget_sram / 1024:.0f} KB are kept "
                       f"for stack, heap and C library)")
    files = write_project(p.program, p, out_dir, sram=budget_sram)
    m = p.memory
    click.echo(f"wrote {len(files)} files to {out_dir}: scheme {p.program.plan.scheme.name}, peak SRAM "
               f"{m.peak_sram / 1024:.1f} KB of {budget_sram / 1024:.0f} KB, flash {m.flash / 1024:.1f} KB of "
               f"{budget_flash / 1024:.0f} KB (memory.txt)")
    build = "make run" if target == "host" else f"make {target}"
    click.echo(f"build: make -C {out_dir}{'' if target == 'host' else ' ' + target}  ({build})")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--target", type=click.Choice(["host", "cortex-m4", "cortex-m7"]), default="host", show_default=True,
              help="host: build with gcc and run; cortex-m4 / cortex-m7: build with arm-none-eabi-gcc and run "
                   "under QEMU (mps2-an386 / mps2-an500).")
def run(directory, target) -> None:
    """Build and run the demo of a `tte compile` output DIRECTORY: prints the losses, the exit code, and on
    Cortex-M the flash / RAM use, the measured stack peak and instructions per step (QEMU -icount)."""
    from .device import run_demo

    result = run_demo(directory, target)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
