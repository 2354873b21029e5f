"""Issue 17, training stage: invalid UTF-8 (F8), empty answers (F9), a damaged newest checkpoint (F12).

Each test failed on the code before the fix (noted per test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nanodex.errors import NanodexError
from tests.hardening import assert_one_line_error, run_cli
from tests.test_trainer import TRAIN, tiny_base, tiny_config  # noqa: F401  (tiny_base is a fixture)
from trainer import data
from trainer.run import checkpoints_in, train

GOOD = {"prompt": "What does add do?", "response": "It adds [calc/arith.py:1-2].", "id": "a"}


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def test_f8_invalid_utf8_is_one_line(tmp_path: Path) -> None:
    """F8 (failed before: UnicodeDecodeError traceback from the trainer)."""
    bad = _write(tmp_path / "train.jsonl", (json.dumps(GOOD) + "\n").encode() + b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(NanodexError, match=r"train.jsonl:2: not UTF-8"):
        data.load_rows(bad)
    ran = run_cli("trainer", "--dataset", str(bad), "--out", str(tmp_path / "o"))
    assert_one_line_error(ran, "not UTF-8", "train.jsonl:2")


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "  \n"}]},
        {
            "prompt": "q?",
            "response": "   ",
            "messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": " "}],
        },
    ],
)
def test_f9_rows_with_empty_answers_are_refused(tmp_path: Path, row: dict[str, Any]) -> None:
    """F9 (failed before: the row passed and the trainer trained on template tokens, exit 0)."""
    path = _write(tmp_path / "train.jsonl", (json.dumps(GOOD) + "\n" + json.dumps(row) + "\n").encode())
    with pytest.raises(NanodexError, match=r"train.jsonl:2: an assistant turn is empty"):
        data.load_rows(path)
    ran = run_cli("trainer", "--dataset", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(ran, "assistant turn is empty")


def test_f12_damaged_newest_checkpoint_falls_back_to_the_previous(
    tiny_base: Path,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """F12 (failed before: --resume picked the damaged checkpoint-4 and stopped with a traceback)."""
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 5:
                raise KeyboardInterrupt

    out = tmp_path / "adapter"
    cfg = tiny_config(tiny_base, out, max_steps=6, save_interval=2, eval_interval=0, logging_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Crash()])
    assert [p.name for p in checkpoints_in(cfg.checkpoints)] == ["checkpoint-2", "checkpoint-4"]
    weights = Path(cfg.checkpoints) / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # its tail lost (a kill while it was written)

    with caplog.at_level("WARNING"):
        result = train(cfg, resume=True)
    t = result.manifest["training"]
    assert t["resumed_from_step"] == 2 and t["global_step"] == 6
    assert any("checkpoint-4" in r.message and "damaged" in r.message for r in caplog.records)

    # an explicit damaged checkpoint is one line (the resumed run wrote checkpoint-4 anew: damage it again)
    from trainer.checkpoints import checkpoint_damage
    from trainer.run import resume_point

    weights.write_bytes(weights.read_bytes()[:-100])
    assert "adapter_model.safetensors" in (checkpoint_damage(weights.parent) or "")
    with pytest.raises(NanodexError, match="is damaged"):
        resume_point(cfg, str(weights.parent))

    # F8 for eval too: the trained adapter against an eval set that is not UTF-8
    bad = _write(tmp_path / "eval.jsonl", b'{"prompt": "\xff"}\n')
    assert_one_line_error(run_cli("trainer.eval", "--adapter", str(out), "--dataset", str(bad)), "not UTF-8")


def test_f12_every_checkpoint_damaged_is_one_line(tmp_path: Path) -> None:
    """F12: nothing whole to resume from is an error naming each checkpoint (failed before: it
    resumed into a traceback)."""
    root = tmp_path / "run.checkpoints"
    for step in (2, 4):
        ck = root / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        (ck / "trainer_state.json").write_text('{"global_step": ' + str(step))  # cut off
        (ck / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    cfg = tiny_config(Path("unused"), tmp_path / "run")
    assert cfg.checkpoints == str(root)
    from trainer.run import resume_point

    with pytest.raises(NanodexError, match="every checkpoint .* is damaged: checkpoint-4 .*checkpoint-2"):
        resume_point(cfg, True)


def test_f11_trainer_refuses_a_mixed_dataset_set(tmp_path: Path) -> None:
    """F11 (reader side; failed before: a train.jsonl from another run than its stats.json was used)."""
    folder = tmp_path / "ds"
    folder.mkdir()
    train_file = folder / "train.jsonl"
    train_file.write_bytes(TRAIN.read_bytes())
    (folder / "stats.json").write_text(
        json.dumps({"outputs_sha256": {"train.jsonl": data.file_sha256(train_file)}})
    )
    assert data.load_rows(train_file)  # the set as written: fine
    train_file.write_bytes(TRAIN.read_bytes() + (json.dumps(GOOD) + "\n").encode())
    with pytest.raises(NanodexError, match="is not the file .*stats.json lists"):
        data.load_rows(train_file)
    assert_one_line_error(
        run_cli("trainer", "--dataset", str(train_file), "--out", str(tmp_path / "o")),
        "re-run `make dataset`",
    )
