"""The small shared pieces every layer uses, in the lowest layer so that all three packages can import them.

- Atomic writes: :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_path` (a temporary file name
  for writers that need one: matplotlib ``savefig``, SB3 ``model.save``, safetensors ``save_file``) and
  :func:`atomic_directory` (directory-shaped outputs: checkpoints, model directories). Each writes to a temporary
  file or directory next to the final one, ``fsync``s it, then renames it into place with ``os.replace``; on any
  failure the temporary is removed and whatever was at the final path is left as it was. Temporaries are hidden
  (``.NAME.tmp-XXXXXXXX[.suffix]``) and get the permissions an ordinary ``open`` / ``mkdir`` would give.
- :func:`import_attr`: ``"package.module:attr.sub"`` -> the object, with errors that name the spec and the fix.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "BadSpecError",
    "SpecAttributeError",
    "SpecImportError",
    "SpecModuleNotFoundError",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "import_attr",
]


# -------------------------------------------------------------------------------------------- atomic writes
def _sibling(path: Path, tag: str, suffix: str = "") -> Path:
    """A hidden name next to ``path``: ``.{name}.{tag}-XXXXXXXX{suffix}``."""
    return path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}{suffix}"


def _create_sibling(path: Path, make, suffix: str = "") -> Path:
    """Create a new temporary sibling of ``path`` with ``make(name)`` (which raises FileExistsError if taken)."""
    for _ in range(100):
        tmp = _sibling(path, "tmp", suffix)
        try:
            make(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary name next to {path}")


def _new_file(tmp: Path) -> None:
    # 0o666 minus the umask: the mode an ordinary open(path, "w") gives (tempfile.mkstemp would make it private)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; best effort (some systems cannot open or fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file name next to ``path``; when the block ends, the file written there is ``fsync``ed and
    renamed onto ``path``. If the block raises, the temporary is removed and ``path`` is untouched.

    The temporary exists (empty) when the block starts and ends in ``suffix``, by default ``path``'s own suffix, so
    writers that pick a format from the name (``savefig``, SB3 ``save``) pick the right one::

        with atomic_path(out / "curves.png") as tmp:
            fig.savefig(tmp)
    """
    path = Path(path)
    tmp = _create_sibling(path, _new_file, path.suffix if suffix is None else suffix)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, write, flush, fsync, rename). Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temporary file, write, flush, fsync, rename). Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding) as fh:
        fh.write(text)
        fh.flush()
    return path


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a new empty directory next to ``final`` to build a directory-shaped output in; when the block ends,
    every file in it is ``fsync``ed and the directory is renamed to ``final``. If the block raises, the temporary
    directory is removed and ``final`` is untouched.

    An existing ``final`` is replaced only once the new one is complete (``replace=True``): it is moved aside, the
    new one renamed into place, then the old one removed (put back if the rename fails). With ``replace=False`` an
    existing non-empty ``final`` (say, written by another process meanwhile) raises :class:`FileExistsError` and
    is kept, the new one discarded.
    """
    final = Path(final)
    tmp = _create_sibling(final, lambda p: os.mkdir(p, 0o777))  # 0o777 minus the umask, as mkdir
    old: Path | None = None
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync_file(Path(root) / name)
            _fsync_dir(Path(root))
        if replace and (final.exists() or final.is_symlink()):
            old = _sibling(final, "old")
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError as err:
            if old is not None:
                os.replace(old, final)
                old = None
            if not replace and final.exists():
                raise FileExistsError(f"{final} appeared while it was being written; kept it") from err
            raise
    except BaseException:
        _remove(tmp)
        raise
    finally:
        if old is not None:
            _remove(old)
    _fsync_dir(final.parent)


# ----------------------------------------------------------------------------------------------- import_attr
class BadSpecError(ValueError):
    """An import spec that does not look like ``package.module:attr``."""


class SpecImportError(ImportError):
    """``import_attr`` could not import the spec's module, or found no such attribute in it. Attributes: ``spec``,
    ``module``, ``attr``; ``name`` is the missing module or attribute (``None`` when the module raised)."""

    def __init__(self, message: str, spec: str, module: str, attr: str, name: str | None = None):
        super().__init__(message, name=name)
        self.spec, self.module, self.attr = spec, module, attr


class SpecModuleNotFoundError(SpecImportError, ModuleNotFoundError):
    """The spec's module (or one of its parent packages) is not installed / not on ``sys.path``."""


class SpecAttributeError(SpecImportError):
    """The spec's module imports but has no such attribute (as ``from module import name`` raises ImportError)."""


def import_attr(spec: str) -> Any:
    """``"package.module:attr.sub"`` -> ``package.module``'s ``attr.sub`` (the module imported, then the attribute
    path followed).

    Raises :class:`BadSpecError` (a ``ValueError``) for a malformed spec; :class:`SpecModuleNotFoundError` when the
    module is not installed; :class:`SpecAttributeError` when it has no such attribute; :class:`SpecImportError`
    when importing the module raised (the original error is the ``__cause__``). The last three are ``ImportError``s.
    """
    module, sep, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not module.strip() or not attr.strip() or any(not p for p in attr.split(".")):
        raise BadSpecError(f"{spec!r} must look like 'package.module:attr' (an importable module, a colon, then the "
                           f"name of an object in it)")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            raise SpecModuleNotFoundError(f"{spec!r}: no module named {err.name!r} (is it installed, or on sys.path / "
                                          f"PYTHONPATH?)", spec, module, attr, name=err.name) from err
        raise SpecImportError(f"{spec!r}: importing {module!r} failed: {err}", spec, module, attr) from err
    except ImportError as err:
        raise SpecImportError(f"{spec!r}: importing {module!r} failed: {err}", spec, module, attr) from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise SpecAttributeError(f"{spec!r}: module {module!r} has no attribute {attr!r} (check the name after "
                                     f"the colon)", spec, module, attr, name=part) from err
    return obj
