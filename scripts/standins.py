"""Random-weight stand-ins of SmolLM2-135M and all-MiniLM-L6-v2, for benchmarks on a machine without the offline
model packages (scripts/bench_gpu.sh). Same architectures, shapes and tokenizers as the real models; random weights.

    python scripts/standins.py export scripts/standins   # here, once: configs + tokenizers from the installed models
    python scripts/standins.py build OUT                  # anywhere with torch + transformers: OUT/smollm2-135m and
                                                          # OUT/all-minilm-l6-v2 (a sentence-transformers folder)

``build`` needs only torch and transformers (no network, none of dialogue-rl's other dependencies). The shipped
files are small (tokenizer.json gzipped); the weights are made on the spot, seeded, in a few seconds.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "standins"
LM, ENCODER = "smollm2-135m", "all-minilm-l6-v2"
LM_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "chat_template.jinja")
ENCODER_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                 "special_tokens_map.json", "tokenizer_config.json", "1_Pooling/config.json")


def export(dest: Path) -> None:
    """Copy the configs and tokenizers of the installed real models (tokenizer.json gzipped) to ``dest``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from dialogue_env.models import ensure_smollm2_cache
    from rewards.embeddings import minilm_path

    for name, src, files in ((LM, ensure_smollm2_cache(), LM_FILES), (ENCODER, Path(minilm_path()), ENCODER_FILES)):
        out = dest / name
        for f in files:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(src) / f, out / f)
        with open(Path(src) / "tokenizer.json", "rb") as fh, gzip.GzipFile(out / "tokenizer.json.gz", "wb", 9,
                                                                          mtime=0) as gz:
            gz.write(fh.read())
        print(f"exported {name} from {src} to {out}")


def _copy_shipped(src: Path, out: Path) -> None:
    for f in src.rglob("*"):
        if f.is_file():
            target = out / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.suffix == ".gz":
                target.with_suffix("").write_bytes(gzip.decompress(f.read_bytes()))
            else:
                shutil.copyfile(f, target)


def build(out: Path, seed: int = 0) -> None:
    """Random-weight models from the shipped configs: ``out/smollm2-135m`` (a causal LM folder that
    ``load_policy`` reads) and ``out/all-minilm-l6-v2`` (a sentence-transformers folder for ``DIALOGUE_RL_MINILM``)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    for name, cls in ((LM, AutoModelForCausalLM), (ENCODER, AutoModel)):
        target = out / name
        if (target / "model.safetensors").is_file():
            print(f"{target}: already built")
            continue
        _copy_shipped(HERE / name, target)
        torch.manual_seed(seed)
        model = cls.from_config(AutoConfig.from_pretrained(target))
        model.save_pretrained(target, safe_serialization=True)
        print(f"built {name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M random parameters in {target}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["export", "build"])
    parser.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    export(args.dir) if args.command == "export" else build(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
