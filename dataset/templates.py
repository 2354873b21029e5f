"""Question templates per kind and aspect, and the natural-language renderings of identifiers.

Facts are learnt when shown several ways, so each aspect has several phrasings: some name the
symbol as code (`load_config`), some in words ("load config"), some quote its docstring. A
fact's phrasings are rotated by a hash of the fact, so the first phrasing differs across facts
and a small dataset still sees every template.
"""

from __future__ import annotations

import hashlib
import re
import string

from brain.text import split_identifier

TEMPLATES: dict[tuple[str, str], list[str]] = {
    # discovery
    ("discovery", "capability"): [
        "Do we support {action}?",
        "Is there a way to {action}?",
        "Does the codebase have {sym}?",
        "Is there a function that does this: {doc}",
        "Can I {action} with this code?",
    ],
    ("discovery", "goal"): [  # what the docstring says it does, in a user's words: the name is not given
        "How can I {goal}?",
        "Is there a way to {goal}?",
        "How do I {goal}?",
    ],
    ("discovery", "concept"): [
        "Is there a class for {nl}?",
        "Does the code define {sym}?",
        "Do we have a {nl} type?",
        "Is there something that represents this: {doc}",
    ],
    ("discovery", "term"): [
        "Does the codebase deal with {term}?",
        "Is there anything about {term} in this code?",
        "Do we have code for {term}?",
    ],
    # explain
    ("explain", "overview"): [
        "How does {sym} work?",
        "What does {sym} do?",
        "Explain {sym}.",
        "How does {nl} work in this codebase?",
    ],
    ("explain", "returns"): [
        "What does {sym} return?",
        "What is the return value of {sym}?",
        "What do I get back from {sym}?",
    ],
    ("explain", "raises"): [
        "What does {sym} raise?",
        "Which errors can {sym} raise?",
        "When does {sym} fail with an exception?",
    ],
    ("explain", "callers"): [
        "Who calls {sym}?",
        "Where is {sym} used?",
        "Which functions call {sym}?",
    ],
    ("explain", "calls"): [
        "What does {sym} call?",
        "Which functions does {sym} use?",
        "What are the callees of {sym}?",
    ],
    ("explain", "tests"): [
        "Which tests cover {sym}?",
        "How is {sym} tested?",
        "Is {sym} tested?",
    ],
    ("explain", "class"): [
        "What is {sym}?",
        "Explain the {sym} {kind}.",
        "What does the {sym} {kind} represent?",
        "What is a {nl} in this codebase?",
    ],
    ("explain", "methods"): [
        "What methods does {sym} have?",
        "Which operations does {sym} offer?",
        "List the methods of {sym}.",
    ],
    ("explain", "bases"): [
        "What does {sym} inherit from?",
        "What is the base of {sym}?",
        "Which types does {sym} extend?",
    ],
    ("explain", "subclasses"): [
        "Which classes derive from {sym}?",
        "What are the subclasses of {sym}?",
        "What extends {sym}?",
    ],
    ("explain", "users"): [
        "Who uses {sym}?",
        "Where is {sym} created or called?",
        "Which functions use {sym}?",
    ],
    # howto
    ("howto", "usage"): [
        "How do I call {sym}?",
        "How is {sym} used?",
        "Show me an example of calling {sym}.",
        "How do I {action}?",
    ],
    ("howto", "recipe"): [
        'How do I reproduce the scenario "{goal}" in code?',
        'What is the call sequence for "{goal}"?',
        "Which calls does {test} make, in order?",
        'Show me, step by step, how the code does "{goal}".',
    ],
    ("howto", "docs"): [
        "Which functions does the code example at {where} use?",
        "What does the example in {where} call?",
    ],
    # diag
    ("diag", "fails"): [
        "Why would {sym} fail?",
        "What can make {sym} throw?",
        "{sym} raised an exception: what should I check?",
    ],
    ("diag", "error"): [
        "What raises {err}?",
        "I got {err}: where does it come from?",
        "Which code raises {err}, and when?",
        "How do I diagnose {err}?",
    ],
    ("diag", "site"): [
        "When does {site} raise {err}?",
        "Why would {site} raise {err}?",
        "I get {err} from {site}: what should I check?",
    ],
    ("diag", "subclasses"): [
        "Which errors derive from {err}?",
        "What are the subclasses of {err}?",
        "If I catch {err}, which errors do I also catch?",
    ],
    # architecture
    ("architecture", "deps"): [
        "What does {mod} depend on?",
        "Which modules does {mod} import?",
        "What are the dependencies of the {mod} module?",
    ],
    ("architecture", "users"): [
        "Which modules use {mod}?",
        "What depends on {mod}?",
        "Who imports {mod}?",
    ],
    ("architecture", "contents"): [
        "What is in {mod}?",
        "What does the module {mod} contain?",
        "What is {path} for?",
        "Which module is about this: {doc}",
    ],
    ("architecture", "where"): [
        "Where is {sym} defined?",
        "Which file holds {sym}?",
        "In which module does {sym} live?",
        "Where is the code to {action}?",
    ],
    ("architecture", "term"): [
        "Where does the code deal with {term}?",
        "Which files are about {term}?",
    ],
    # negatives: a name that does not exist ({fake_*})
    ("discovery", "negative"): [
        "Do we support {fake_action}?",
        "Is there a way to {fake_action}?",
        "Does the codebase have {fake_sym}?",
    ],
    ("explain", "negative"): [
        "How does {fake_sym} work?",
        "What does {fake_sym} return?",
        "What does {fake_sym} do?",
    ],
    ("howto", "negative"): [
        "How do I call {fake_sym}?",
        "How do I {fake_action}?",
    ],
    ("diag", "negative"): [
        "What raises {fake_err}?",
        "I got {fake_err}: where does it come from?",
    ],
    ("architecture", "negative"): [
        "What does {fake_mod} depend on?",
        "What is in {fake_mod}?",
        "Where is {fake_sym} defined?",
    ],
}


def words(ident: str) -> str:
    """'parseHTTPRequest_v2' -> 'parse http request v 2'."""
    return " ".join(split_identifier(ident))


# a name reads as something a user does ("Can I {action}?") only when it starts with a verb
_VERB_WORDS = """
add apply ask build bump cache call cancel check clean clear close combine compare compile
compute connect convert copy count create crawl decode delete detect diff download dump
embed encode evaluate export extract fetch filter find fit format generate get handle hash
import index infer insert install list load lookup make map match merge mix normalize open
pack parse patch plot post predict publish push put query read record refresh register
reload remove render repair replace reset resolve retrieve retry return rotate run sample
save scan score search select send serve set sort split start stop store stream strip
summarize sync tokenize train transform translate trim unpack update upload validate verify
walk watch wrap write
"""
VERBS = frozenset(_VERB_WORDS.split())

# more verbs a docstring opens with ("Yield ...", "Raise ..."), beyond VERBS: dataset.describe conjugates
# them ("`f` [label] yields ..."), `goal` reads them as what a user wants to do
_MORE_VERBS = frozenset(
    [
        "answer",
        "apply",
        "ask",
        "bind",
        "carry",
        "choose",
        "collect",
        "drop",
        "emit",
        "give",
        "join",
        "keep",
        "lay",
        "lift",
        "mark",
        "move",
        "name",
        "note",
        "open",
        "pick",
        "print",
        "raise",
        "read",
        "rebuild",
        "reject",
        "rename",
        "report",
        "resolve",
        "return",
        "say",
        "show",
        "skip",
        "sum",
        "take",
        "tell",
        "turn",
        "use",
        "wait",
        "yield",
    ]
)
DOC_VERBS = VERBS | _MORE_VERBS  # every verb a docstring may open with


def action(qualname: str) -> str:
    """A callable as a verb phrase, or '' when its name is not one.

    `load_config` -> 'load config', `Cart.add` -> 'add with a cart'; `as_dict`, `coverage` -> ''
    (the templates that need an action are then skipped for it).
    """
    parts = qualname.split(".")
    verb = words(parts[-1])
    if verb.split(" ", 1)[0] not in VERBS:
        return ""
    if len(parts) > 1:
        owner = words(parts[-2])
        return f"{verb} with {'an' if owner[:1] in 'aeiou' else 'a'} {owner}"
    return verb


_NAMED_THING = re.compile(r"^\w+ \w+ (?:that|which) ")  # "Wait strategy that ...": a noun, not a verb
_NOUN_TO_VERB = re.compile(r"^[A-Za-z][\w ,()-]{0,40}? to (\w+) (.+)$")  # "Decorator to wrap ..."


def goal(doc: str) -> str:
    """A docstring's first sentence as what a user wants to do, in their words, or ''.

    'Remove expired items from the cache.' -> 'remove expired items from the cache';
    'Retries if an exception was raised.' -> 'retry if an exception was raised';
    'Decorator to wrap a function with a memoizing callable.' -> 'wrap a function with a memoizing
    callable'; 'Return a key for ...' -> 'get a key for ...'. Users ask for a behaviour ("how do
    I retry only on IOError?"), rarely by the name of the code that does it, and a question that
    names its subject teaches nothing about finding it among the code shown.
    """
    text = doc_prompt(doc).rstrip(".!?")
    head, _, rest = text.partition(" ")
    if not rest or _NAMED_THING.match(text):
        return ""
    low = head.lower()
    stems = [low] + [
        low[: -len(end)] + add for end, add in (("ies", "y"), ("es", ""), ("s", "")) if low.endswith(end)
    ]
    verb = next((v for v in stems if v in DOC_VERBS), "")
    if not verb:
        m = _NOUN_TO_VERB.match(text)
        if m is None or m.group(1).lower() not in DOC_VERBS:
            return ""
        verb, rest = m.group(1).lower(), m.group(2)
    return f"{'get' if verb == 'return' else verb} {rest}"


def doc_prompt(doc: str, limit: int = 24) -> str:
    """A docstring first sentence usable inside a prompt (short, quoted as is), else ''."""
    doc = " ".join((doc or "").split()).replace("[", "(").replace("]", ")")
    if (
        not doc
        or not doc[0].isalpha()
        or len(doc.split()) > limit
        or doc.count("`") % 2
        or doc.endswith("...")
    ):
        return ""
    return doc if doc.endswith((".", "?", "!")) else doc + "."


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def render(kind: str, aspect: str, fact: str, values: dict[str, str], limit: int) -> list[str]:
    """Up to `limit` distinct prompts for one aspect; templates whose fields are empty are skipped."""
    temps = TEMPLATES[(kind, aspect)]
    start = int(hashlib.sha1(f"{fact}|{aspect}".encode()).hexdigest(), 16) % len(temps)
    out: list[str] = []
    for t in temps[start:] + temps[:start]:
        if all(values.get(f) for f in _fields(t)):
            p = t.format(**values)
            if p not in out:
                out.append(p)
        if len(out) >= limit:
            break
    return out
