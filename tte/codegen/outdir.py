"""The output directory of `tte compile`: which directories tte writes into, and which files in them are its own.

tte lists every file it writes in ``tte_manifest.json`` (relative paths).  A directory is written into when it does
not exist, is empty, or holds such a manifest (tte wrote it before); any other directory only with ``force``.  Only
tte's own files are written or replaced: the files of this compile, and the files of the previous one that this
one no longer writes are removed (those listed in the old manifest, nothing else); whatever else the directory
holds (the demo's builds and saved state, the user's files) is left alone.
"""

from __future__ import annotations

import json
import os
import pathlib

from ..errors import TteError

MANIFEST = "tte_manifest.json"
MANIFEST_FORMAT = 1


def _os_error(e: OSError) -> str:
    return e.strerror or str(e)


def read_manifest(out: pathlib.Path) -> set[str] | None:
    """The files a previous `tte compile` wrote into ``out`` (relative paths), or None if it holds no manifest."""
    path = out / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise TteError(f"'{path}' is damaged: not a manifest tte can read; remove it, or compile into another "
                       "directory") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or data.get("tte_manifest") != MANIFEST_FORMAT or \
            not all(isinstance(f, str) for f in files):
        raise TteError(f"'{path}' is not a manifest this tte reads (format {MANIFEST_FORMAT}); remove it, or compile "
                       "into another directory")
    return set(files)


def check(out_dir: str | os.PathLike, force: bool = False) -> tuple[pathlib.Path, set[str]]:
    """Check, without writing anything, that tte may write into ``out_dir``: returns the directory and the files tte
    wrote there before (empty for a new directory)."""
    text = os.fspath(out_dir)
    if not text.strip():
        raise TteError("the output directory is empty ('-o \"\"'): give the directory to write into, e.g. -o out")
    out = pathlib.Path(text)
    if out.exists() and not out.is_dir():
        raise TteError(f"cannot write into '{out}': it is a file, not a directory")
    if not out.exists():
        parent = out.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise TteError(f"cannot create the output directory '{out}': '{parent}' is a file, not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise TteError(f"cannot create the output directory '{out}': '{parent}' is not writable")
        return out, set()
    if not os.access(out, os.W_OK | os.X_OK):
        raise TteError(f"cannot write into the output directory '{out}': permission denied")
    old = read_manifest(out)
    if old is None and not force:
        try:
            entries = sorted(p.name for p in out.iterdir())
        except OSError as e:
            raise TteError(f"cannot read the output directory '{out}': {_os_error(e)}") from None
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise TteError(f"'{out}' is not empty ({shown}) and was not written by tte (no {MANIFEST}): choose a new "
                           f"or empty directory, or pass --force to write tte's files into it (other files are left "
                           f"alone)")
    return out, old or set()


def prepare(out_dir: str | os.PathLike, force: bool = False) -> tuple[pathlib.Path, set[str]]:
    """:func:`check`, then create the directory."""
    out, old = check(out_dir, force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TteError(f"cannot create the output directory '{out}': {_os_error(e)}") from None
    return out, old


def finish(out: pathlib.Path, files: list[pathlib.Path], old: set[str]) -> pathlib.Path:
    """Remove the files of the previous compile that this one did not write again, and write the manifest of
    ``files``; returns the manifest's path."""
    names = sorted({p.relative_to(out).as_posix() for p in files})
    for name in sorted(old - set(names) - {MANIFEST}):
        path = out / name
        if ".." in pathlib.PurePosixPath(name).parts or pathlib.PurePosixPath(name).is_absolute():
            continue  # never outside the directory, whatever a manifest says
        if path.is_file() or path.is_symlink():
            path.unlink()
    manifest = out / MANIFEST
    manifest.write_text(json.dumps({"tte_manifest": MANIFEST_FORMAT, "files": names}, indent=1) + "\n")
    return manifest
