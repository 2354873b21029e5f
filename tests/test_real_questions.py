"""The real-question sets (scripts/real_questions.jsonl and the held-out
scripts/real_questions_heldout.jsonl) load and are well formed; the loader rejects
malformed rows. No network: gold spans are verified against the sdists by
`python -m scripts.real_questions --check`, not here."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nanodex.errors import NanodexError
from scripts.real_questions import DEFAULT, HELDOUT, KINDS, load, module_name, verify

GOOD_ROW = {
    "id": "lib-01",
    "library": "lib",
    "version": "1.0",
    "kind": "howto",
    "question": "How do I frobnicate?",
    "source": "https://github.com/o/lib/issues/1",
    "gold": [{"qualname": "lib.mod.frob", "path": "lib/mod.py", "start_line": 3, "end_line": 5}],
    "note": "frob frobnicates",
}


def _write(tmp_path: Path, rows: list[object]) -> Path:
    p = tmp_path / "q.jsonl"
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return p


@pytest.mark.parametrize("path", [DEFAULT, HELDOUT], ids=["set", "heldout"])
def test_question_set_is_well_formed(path: Path) -> None:
    qs = load(path)
    assert len(qs) >= 40
    libs = Counter(q.library for q in qs)
    assert len(libs) >= 2
    assert len({q.id for q in qs}) == len(qs)
    for q in qs:
        assert q.kind in KINDS
        assert q.source.startswith("https://")
        assert 1 <= len(q.gold) <= 3
        assert q.id.startswith(q.library.lower() + "-")
        for g in q.gold:
            assert g.qualname.startswith(module_name(g.path)), (q.id, g.qualname, g.path)
    # one pinned version per library
    assert all(len({q.version for q in qs if q.library == lib}) == 1 for lib in libs)
    # every kind is represented
    assert set(Counter(q.kind for q in qs)) == set(KINDS)


def test_heldout_libraries_are_not_in_the_set() -> None:
    """The held-out set confirms results on libraries the design never looked at."""
    assert not {q.library for q in load(DEFAULT)} & {q.library for q in load(HELDOUT)}


def test_load_accepts_a_good_row(tmp_path: Path) -> None:
    (q,) = load(_write(tmp_path, [GOOD_ROW]))
    assert q.gold[0].start_line == 3 and q.library == "lib"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "trivia"}, "kind"),
        ({"source": "not a url"}, "source"),
        ({"gold": []}, "gold"),
        ({"gold": [{"qualname": "x", "path": "../x.py", "start_line": 1, "end_line": 2}]}, "path"),
        ({"gold": [{"qualname": "x", "path": "x.py", "start_line": 5, "end_line": 2}]}, "lines"),
        ({"gold": [{"qualname": "x", "path": "x.py", "start_line": 1}]}, "lacks"),
        ({"question": ""}, "question"),
        ({"extra": 1}, "unknown"),
    ],
)
def test_load_rejects_a_malformed_row(tmp_path: Path, change: dict, message: str) -> None:
    bad = {**GOOD_ROW, "id": "lib-02", **change}
    path = _write(tmp_path, [GOOD_ROW, bad])
    with pytest.raises(NanodexError, match=message) as err:
        load(path)
    assert f"{path}:2:" in str(err.value)  # names the bad line


def test_load_rejects_duplicates_bad_json_and_two_pins(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="duplicate id"):
        load(_write(tmp_path, [GOOD_ROW, GOOD_ROW]))
    with pytest.raises(NanodexError, match="not valid JSON"):
        load(_write(tmp_path, [GOOD_ROW, "{oops"]))
    with pytest.raises(NanodexError, match="pinned at 1.0"):
        load(_write(tmp_path, [GOOD_ROW, {**GOOD_ROW, "id": "lib-02", "version": "2.0"}]))


def test_verify_checks_spans_with_ast(tmp_path: Path) -> None:
    root = tmp_path / "lib-1.0"
    (root / "src" / "lib").mkdir(parents=True)
    (root / "src" / "lib" / "mod.py").write_text(
        "import os\n\n\nclass A:\n    @property\n    def frob(self):\n        return 1\n", encoding="utf-8"
    )
    row = {
        **GOOD_ROW,
        "gold": [{"qualname": "lib.mod.A.frob", "path": "src/lib/mod.py", "start_line": 6, "end_line": 7}],
    }
    qs = load(_write(tmp_path, [row]))
    assert verify(qs, {"lib": root}) == []
    row["gold"][0]["start_line"] = 5  # decorator line: not the def line
    problems = verify(load(_write(tmp_path, [row])), {"lib": root})
    assert len(problems) == 1 and "6-7" in problems[0]


def _sdist(path: Path, members: dict[str, bytes]) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_fetch_source_unpacks_a_cached_sdist_once_without_pip(tmp_path: Path) -> None:
    from scripts.real_questions import fetch_source

    base = tmp_path / "lib-1.0"
    base.mkdir()
    _sdist(base / "lib-1.0.tar.gz", {"lib-1.0/src/lib/mod.py": b"def frob():\n    return 1\n"})
    root = fetch_source("lib", "1.0", tmp_path)
    assert root.name == "lib-1.0" and (root / "src/lib/mod.py").is_file()
    (root / "marker").write_text("kept")
    assert fetch_source("lib", "1.0", tmp_path) == root and (root / "marker").is_file()  # reused


def test_fetch_source_refuses_members_outside_the_target(tmp_path: Path) -> None:
    from scripts.real_questions import fetch_source

    base = tmp_path / "evil-1.0"
    base.mkdir()
    _sdist(base / "evil-1.0.tar.gz", {"../escaped.py": b"x = 1\n"})
    with pytest.raises(NanodexError):
        fetch_source("evil", "1.0", tmp_path)
    assert not (tmp_path / "escaped.py").exists() and not (base / "escaped.py").exists()
