"""Stop words: the short words dropped before a text's words are matched against code.

Two places match words: `answer.blocks.question_words` (which lines of a symbol a question
is about) and `answer.citations.support` (which shown block an uncited answer paragraph talks
about). Both drop `STOPWORDS`; each drops more words of its own, named below with why.
Words of one or two letters never reach either check (both keep only longer words), so the
short ones here only make the list read as the English it is.
"""

from __future__ import annotations

# English function words: they say nothing about which code is meant, in a question or an answer.
_SHARED = """a an and are as at be by can do does for from how i if in into is it its me my no not of on
    or so than that the then these this to up was we what when where which who why with
    class return use used"""
STOPWORDS = frozenset(_SHARED.split())

# Dropped from questions only. Python words found on most lines of code (def, self, none, true,
# false, get, set) would pick every line of a symbol; "need", "want", "way" are how people ask.
# The English words (been, could, they, would, ...) are not dropped from answer paragraphs: there
# they count in the share of a paragraph's words a block contains, and dropping them would raise
# those shares and move which paragraphs clear answer.citations.ATTRIBUTE_THRESHOLD (unmeasured).
_QUESTION_ONLY = """been but could did had has have such their them there they too using were while will would
    you your def self none true false get set need want way"""
QUESTION_STOPWORDS = STOPWORDS | frozenset(_QUESTION_ONLY.split())

# Dropped from answer paragraphs only: how an answer talks about any code ("the function
# calls ..., returns a value"), so they would make every block look like support. Questions keep
# them: in "which method calls the client?" they are matched against the code's own words.
_CLAIM_ONLY = "also only out those call called calls code function method returns uses value values"
CLAIM_STOPWORDS = STOPWORDS | frozenset(_CLAIM_ONLY.split())
