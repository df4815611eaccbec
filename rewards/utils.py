"""The small shared pieces every layer uses, in the lowest layer so that all three packages can import them.

- Atomic writes: :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_path` (a temporary file name
  for writers that need one: matplotlib ``savefig``, SB3 ``model.save``, safetensors ``save_file``) and
  :func:`atomic_directory` (directory-shaped outputs: checkpoints, model directories). Each writes to a temporary
  file or directory next to the final one, ``fsync``s it, then renames it into place with ``os.replace``; on any
  failure the temporary is removed and whatever was at the final path is left as it was. Temporaries are hidden
  (``.NAME.tmp-XXXXXXXX[.suffix]``) and get the permissions an ordinary ``open`` / ``mkdir`` would give;
  :func:`clear_interrupted_writes` removes the ones a killed process left behind.
- :func:`import_attr`: ``"package.module:attr.sub"`` -> the object, with errors that name the spec and the fix.
- :class:`ConfigBase`: ``from_dict`` / ``from_yaml`` / ``to_dict`` for configuration dataclasses, and
  :func:`parse_overrides` for ``--set field=value`` arguments.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import re
import secrets
import shutil
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = [
    "BadSpecError",
    "ConfigBase",
    "ConfigError",
    "ConfigFileNotFoundError",
    "SpecAttributeError",
    "SpecImportError",
    "SpecModuleNotFoundError",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "clear_interrupted_writes",
    "import_attr",
    "parse_overrides",
]


# -------------------------------------------------------------------------------------------- atomic writes
def _sibling(path: Path, tag: str, suffix: str = "") -> Path:
    """A hidden name next to ``path``: ``.{name}.{tag}-XXXXXXXX{suffix}``."""
    return path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}{suffix}"


_SIBLING = re.compile(r"\.(?P<name>.+)\.(?P<tag>tmp|old)-[0-9a-f]{8}(\..*)?")  # what _sibling names


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
            if final.exists():  # the new directory is in place: the old one can go
                _remove(old)
            else:  # interrupted between the two renames (e.g. KeyboardInterrupt): put the old one back
                os.replace(old, final)
    _fsync_dir(final.parent)


def clear_interrupted_writes(directory: str | os.PathLike, log=None) -> list[Path]:
    """Clean up after atomic writes into ``directory`` that a killed process left unfinished: temporaries
    (``.NAME.tmp-XXXXXXXX*``) are removed; an old ``NAME`` that :func:`atomic_directory` had moved aside to replace
    (``.NAME.old-XXXXXXXX``) is renamed back when ``NAME`` is missing (the kill came between its two renames), else
    removed. Only run it while nothing is writing there. ``log(message)`` hears of each; returns the paths handled."""
    directory = Path(directory)
    handled = []
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = _SIBLING.fullmatch(path.name)
        if match is None:
            continue
        final = directory / match["name"]
        if match["tag"] == "old" and not (final.exists() or final.is_symlink()):
            os.replace(path, final)
            message = f"restored {final} from {path.name}, left by an interrupted replacement"
        else:
            _remove(path)
            message = f"removed {path}, left by an interrupted write"
        handled.append(path)
        if log is not None:
            log(message)
    if handled:
        _fsync_dir(directory)
    return handled


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


# -------------------------------------------------------------------------------------------------- configs
C = TypeVar("C", bound="ConfigBase")


class ConfigError(ValueError):
    """A configuration value, file or override is wrong; the message names the field (or file) and the fix. The
    command line prints it without a traceback."""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """A configuration file that does not exist."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration or constructor argument of the wrong type (``max_new_tokens=2.5``)."""


class ConfigBase:
    """Mixin for configuration dataclasses: ``from_dict``, ``from_yaml``, ``to_dict``.

    Subclasses may set ``config_label`` (how errors name one key, e.g. ``"PPO config field"``) and
    ``config_examples`` (where to look instead, in the missing-file error). A ``validate()`` method, if the class
    has one, runs on every object ``from_dict`` builds.
    """

    config_label: ClassVar[str] = "config field"
    config_examples: ClassVar[str] = "configs/ for examples"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping) -> C:
        """Build from a mapping of field names: unknown keys are a ``ValueError`` listing the valid fields; strings
        that YAML 1.1 left unparsed (``"1e-4"``) become the field's int / float; then ``validate()``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"unknown {cls.config_label}(s) {unknown}; valid fields: {sorted(fields)}")
        hints = _type_hints(cls)
        obj = cls(**{k: _coerce_number(k, v, hints.get(k, fields[k].type)) for k, v in data.items()})
        validate = getattr(obj, "validate", None)
        if callable(validate):
            try:
                validate()
            except ConfigError:
                raise
            except ValueError as err:  # a validate() that raises plain ValueError: still a configuration error
                raise ConfigError(str(err)) from err
        return obj

    @classmethod
    def read_yaml(cls, path: str | os.PathLike) -> dict:
        """The top-level mapping of a YAML file (``{}`` for an empty one); errors name the path."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigFileNotFoundError(f"config file {path} does not exist (see {cls.config_examples})")
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]}"
                              + (f", line {err.problem_mark.line + 1}" if getattr(err, "problem_mark", None) else "")
                              + "); a config is a mapping of field: value lines") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of {cls.config_label}s at the top level, found "
                             f"{type(data).__name__}")
        return data

    @classmethod
    def from_yaml(cls: type[C], path: str | os.PathLike, **overrides) -> C:
        """``from_dict`` of the YAML file at ``path``, with ``overrides`` (field=value) applied on top."""
        return cls.from_dict({**cls.read_yaml(path), **overrides})


def _type_hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not evaluate here: fall back to the raw ones
        return {}


def _number_types(annotation: Any) -> tuple[list[type], bool]:
    """(the numeric types int / float of an annotation, in order; whether it allows None)."""
    if isinstance(annotation, str):  # an unevaluated annotation such as "float | None"
        names = [a.strip() for a in annotation.split("|")]
        return [{"int": int, "float": float}[n] for n in names if n in ("int", "float")], "None" in names
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    return [a for a in args if a in (int, float)], type(None) in args


def _coerce_number(name: str, value: Any, annotation: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string: turn such strings into the field's number type, or say why not."""
    numbers, optional = _number_types(annotation)
    if numbers == [int] and (isinstance(value, bool) or isinstance(value, float)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigTypeError(f"config field {name}={value!r} must be an integer")
    if not isinstance(value, str) or not numbers:
        return value
    if optional and value.strip().lower() in ("none", "null", "~"):
        return None
    try:
        return int(value) if numbers[0] is int else float(value)
    except ValueError:
        shown = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"config field {name}={value!r} is not a number ({shown} expected)") from None


def parse_yaml_value(text: str, what: str) -> Any:
    """The value of a command-line argument written in YAML (JSON is YAML too): ``8``, ``1e-4``, ``{learned: {path:
    runs/rm}}``, ``'{"length": 1.0}'``. ``what`` names the argument in the :class:`ConfigError` a malformed one
    raises (``--set reward``, ``--judge``). The one parser for every such argument (``--set``, ``--reward``,
    ``--judge``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{what} {text!r} does not parse as YAML or JSON ({problem}); write a mapping as "
                          "{name: weight, other: {key: value}}, and quote the whole argument in the shell") from None


def batch_sizes(text: str) -> list[int]:
    """An argparse type: ``"1,16,64"`` -> ``[1, 16, 64]``; anything else is a usage error naming the form."""
    import argparse

    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated positive batch sizes such as 1,16,64")
    return sizes


def parse_overrides(pairs: list[str]) -> dict:
    """``["learning_rate=3e-5", "num_envs=8"]`` -> ``{"learning_rate": 3e-05, "num_envs": 8}`` (YAML values)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like field=value (e.g. --set num_envs=8)")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_yaml_value(value, f"--set {key.strip()}=")
    return out
