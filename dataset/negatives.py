"""Negative examples: questions about things that do not exist, answered "no" with the closest real thing.

A negative name is made from a real fact's name with a word that appears in no name, path or
qualname of the code graph (`encrypt` for `load_config` -> `encrypt_config`), so "nothing here is
named that" is a checked statement, not a guess. Each name is also looked up by qualname and by
reference in the graph and searched for; the top search hit (preferring an error class for
error questions and a module for module questions) is the cited "closest real thing".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from brain.search import Hit, Searcher
from brain.text import split_identifier
from dataset.compose import tick
from dataset.facts import Aspect
from dataset.knowledge import Knowledge, norm
from dataset.templates import render
from extractor.graph import GraphNode

VERBS = [
    "encrypt",
    "upload",
    "archive",
    "compress",
    "migrate",
    "throttle",
    "translate",
    "publish",
    "rollback",
    "notify",
    "schedule",
    "backup",
    "synchronize",
    "federate",
    "watermark",
    "geocode",
    "transcode",
    "shard",
    "replicate",
    "invoice",
    "email",
    "zip",
    "tweet",
    "defragment",
    "hibernate",
    "teleport",
]
ERROR_WORDS = [
    "Quota",
    "Throttle",
    "Checksum",
    "Handshake",
    "Lease",
    "Billing",
    "Geocode",
    "Replica",
    "Shard",
    "Tariff",
    "Voucher",
]
MODULE_WORDS = [
    "telemetry",
    "billing",
    "geocoding",
    "replication",
    "webhooks",
    "payments",
    "sharding",
    "mailer",
    "vouchers",
    "tariffs",
]


@dataclass
class Negative:
    fact: str
    kind: str
    absent: str  # the identifier that does not exist
    prompt: str
    parts: list[str]
    refs: list[str]


def _unused(words: list[str], k: Knowledge) -> list[str]:
    """Words that occur in no normalized node name (so no name even contains them)."""
    names = list(k.names)
    return [w for w in words if w.lower() not in k.words and not any(w.lower() in n for n in names)]


def _pick(options: list[str], key: str) -> str:
    return options[int(hashlib.sha1(key.encode()).hexdigest(), 16) % len(options)]


def _styled(words: list[str], like: str, pascal: bool = False) -> str:
    if pascal or (like[:1].isupper() and "_" not in like):
        return "".join(w.capitalize() for w in words)
    if "_" in like or like.islower():
        return "_".join(words)
    return words[0] + "".join(w.capitalize() for w in words[1:])


class NegativeMaker:
    """Makes negatives for facts already in the dataset (see the module docstring)."""

    def __init__(self, k: Knowledge, searcher: Searcher, paraphrases: int) -> None:
        self.k = k
        self.search = searcher
        self.p = paraphrases
        self.verbs = _unused(VERBS, k)
        self.errors = _unused(ERROR_WORDS, k)
        self.modules = _unused(MODULE_WORDS, k)
        self.error_targets = {b["target"] for b in k.brain if b["type"] == "error" and b.get("target")}

    def make(self, a: Aspect, attempt: int) -> Negative | None:
        """A negative of `a`'s kind derived from its fact; None when none can be made and checked."""
        key = f"{a.fact}|{a.kind}|{attempt}"
        node = self.k.nodes.get(a.subject or "")
        if a.kind == "diag":
            return self._error(a, key)
        if a.kind == "architecture" and node is not None and node.type == "module":
            return self._module(a, key, node)
        if node is None or not self.verbs:
            return None
        verb = _pick(self.verbs, key)
        parts = node.qualname.split(".")
        last = parts[-1]
        ws = split_identifier(last)
        nouns = ws[1:] if node.type in ("function", "method") and len(ws) > 1 else ws
        if node.type == "method" and len(parts) > 1:
            fake = ".".join([*parts[:-1], _styled([verb], last)])
            fake_action = f"{verb} with a {' '.join(split_identifier(parts[-2]))}"
        else:
            fake = _styled([verb, *nouns], last)
            fake_action = f"{verb} {' '.join(nouns)}".strip()
        if self.k.name_exists(fake):
            return None
        values = {"fake_sym": tick(fake), "fake_action": fake_action}
        prompts = render(a.kind, "negative", key, values, 1)
        if not prompts:
            return None
        topic = " ".join(nouns if node.type != "method" else split_identifier(parts[-2]))
        hit = self._closest(topic or prompts[0], fake, lambda h: not h.name.startswith("_"))
        if hit is None:
            return None
        owner = ""
        if node.type == "method" and len(parts) > 1:
            cls = self.k.nodes.get(self.k.parent.get(node.id, ""))
            if cls is not None:
                owner = (
                    f" {tick(cls.qualname)} [{cls.citation}] has no method {tick(fake.rsplit('.', 1)[-1])}."
                )
        if a.kind == "discovery":
            first = f"No: no function, class or module name in this codebase contains {tick(verb)}, so I find no support to {fake_action}."
        else:
            first = f"There is no {tick(fake)} in this codebase: nothing in the code graph is named like it."
        closest = self._closest_sentence(hit, "thing")
        if owner and hit.id == self.k.parent.get(node.id):
            closest = f"The closest real thing is that {self.k.nodes[hit.id].type} itself."
        parts_out = [first] + ([owner.strip()] if owner else []) + [closest]
        return Negative(a.fact, a.kind, fake, prompts[0], parts_out, [hit.id])

    def _error(self, a: Aspect, key: str) -> Negative | None:
        if not self.errors:
            return None
        base = a.fact.split(":")[-1].rsplit("::", 1)[-1].rsplit(".", 1)[-1]
        stem = [w for w in split_identifier(base) if w not in ("error", "exception")][:1] or ["app"]
        fake = _styled([*stem, _pick(self.errors, key).lower(), "error"], "X", pascal=True)
        if self.k.name_exists(fake):
            return None
        prompts = render("diag", "negative", key, {"fake_err": tick(fake)}, 1)
        hit = self._closest(prompts[0], fake, lambda h: h.id in self.error_targets)
        if hit is None:
            return None
        first = f"Nothing in this codebase defines, raises or references {tick(fake)}: the code graph has no name like it."
        what = "error" if hit.id in self.error_targets else "thing"
        return Negative(
            a.fact, "diag", fake, prompts[0], [first, self._closest_sentence(hit, what)], [hit.id]
        )

    def _module(self, a: Aspect, key: str, node: GraphNode) -> Negative | None:
        if not self.modules:
            return None
        qual = node.qualname
        pkg = qual.rsplit(".", 1)[0] if "." in qual else ""
        word = _pick(self.modules, key)
        fake = f"{pkg}.{word}" if pkg else word
        if fake in self.k.module_by_name or self.k.name_exists(fake):
            return None
        prompts = render("architecture", "negative", key, {"fake_mod": tick(fake)}, 1)
        hit = self._closest(
            f"{pkg} {word}".strip(),
            fake,
            lambda h: h.type == "module" and (not pkg or h.qualname.startswith(pkg + ".")),
        )
        if hit is None:
            return None
        first = f"There is no module {tick(fake)} in this repository, and no file or symbol name contains {tick(word)}."
        return Negative(
            a.fact,
            "architecture",
            fake,
            prompts[0],
            [first, self._closest_sentence(hit, "module" if hit.type == "module" else "thing")],
            [hit.id],
        )

    def _closest(self, query: str, fake: str, prefer: Callable[[Hit], bool]) -> Hit | None:
        """Top search hit (the preferred kind first); None if search finds the fake name itself."""
        hits = [
            h
            for h in self.search.search(query, 10, mode="hybrid")
            if h.id in self.k.nodes
            and self.k.resolves(self.k.nodes[h.id].citation)  # an empty file has no line
        ]
        if any(norm(h.name) == norm(fake.rsplit(".", 1)[-1]) for h in hits):
            return None
        real = [h for h in hits if not self.k.is_test(self.k.nodes[h.id])] or hits
        for h in real:
            if prefer(h):
                return h
        return real[0] if real else None

    def _closest_sentence(self, hit: Hit, what: str) -> str:
        node = self.k.nodes[hit.id]
        mod = self.k.nodes.get(node.path)
        where = f" in {tick(mod.qualname)}" if mod is not None and node.type != "module" else ""
        return f"The closest real {what} is {tick(node.qualname)}{where} [{node.citation}]."
