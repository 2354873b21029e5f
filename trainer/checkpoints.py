"""Is a training checkpoint whole? A cheap structural check of every file `--resume` will load.

A run killed while the Trainer writes a checkpoint, or a disk that lost its tail, leaves a
checkpoint-N folder that looks complete (it has trainer_state.json) but fails deep inside
`Trainer.train`. `--resume` checks each candidate first and falls back, with a warning, to the
newest checkpoint that is whole.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path


def _safetensors_damage(path: Path) -> str | None:
    """safetensors: 8-byte header length, a JSON header, and data exactly as long as it says."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            return "cut off before its header"
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            return "cut off inside its header"
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, IndexError, TypeError, ValueError):
            return f"tensor {name} has no data offsets"
    if 8 + n + end != size:
        return f"{size} bytes, its header says {8 + n + end}"
    return None


def _torch_zip_damage(path: Path) -> str | None:
    """torch.save files are zip archives: the central directory is at the end and every member
    has a CRC, so a cut-off or flipped file fails here."""
    if not zipfile.is_zipfile(path):
        return "not a complete torch archive"
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"unreadable archive ({err})"
    return f"member {bad} fails its CRC" if bad else None


def checkpoint_damage(folder: str | Path) -> str | None:
    """None when the checkpoint looks whole, else what is wrong with it (one short phrase)."""
    root = Path(folder)
    try:
        state = json.loads((root / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            return "trainer_state.json has no global_step"
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return f"trainer_state.json is unreadable ({err.__class__.__name__})"
    weights = list(root.glob("*.safetensors")) + list(root.glob("*.bin"))
    if not weights:
        return "no weights file"
    try:
        for path in sorted(root.iterdir()):
            if path.suffix == ".safetensors":
                why = _safetensors_damage(path)
            elif path.suffix in (".pt", ".pth", ".bin"):
                why = _torch_zip_damage(path)
            else:
                continue
            if why:
                return f"{path.name}: {why}"
    except OSError as err:
        return f"unreadable ({err.__class__.__name__})"
    return None
