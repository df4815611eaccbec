"""The YAML presets shipped inside the package (``agents/configs/*.yaml``; the repository's ``configs/`` points
there), so an installed wheel finds them: ``dialogue-rl train --config demo`` or ``--config configs/demo.yaml``.

- ``demo``: the CPU main job (SmolLM2-135M, about 9 minutes on 2 cores);
- ``gpu``: the same on one CUDA GPU, larger batches;
- ``tiny``: the tiny random model, seconds (tests, smoke runs);
- ``compare``, ``compare_tiny``: ``dialogue-rl compare`` settings.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rewards.utils import ConfigFileNotFoundError

PRESETS_PACKAGE = "agents"
PRESETS_FOLDER = "configs"


def preset_names() -> list[str]:
    """The names of the shipped presets (file names without ``.yaml``)."""
    folder = resources.files(PRESETS_PACKAGE) / PRESETS_FOLDER
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config(name_or_path) -> Path:
    """A config file: an existing path as given, else the shipped preset of that name (``demo``, ``demo.yaml`` or
    ``configs/demo.yaml``). Anything else raises ``ConfigFileNotFoundError`` (a ``FileNotFoundError``) listing the presets."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    shipped = resources.files(PRESETS_PACKAGE) / PRESETS_FOLDER / f"{name}.yaml"
    if (path.parent == Path(".") or path.parent.name == PRESETS_FOLDER) and shipped.is_file():
        return Path(str(shipped))
    raise ConfigFileNotFoundError(f"config {name_or_path!s} is neither a file nor a shipped preset; presets: "
                            f"{', '.join(preset_names())} (e.g. --config demo), or give the path of a YAML file")


__all__ = ["preset_names", "resolve_config"]
