"""The citation form every stage writes and checks: `[path:line]` or `[path:start-end]` (DESIGN.md).

One pattern, so that the dataset's answers, the trainer's metrics, the query CLI, the pca_otf
runner and self-tune's verifier all agree on what counts as a citation. Groups: path, start,
end (None for a single line). The path holds no whitespace, brackets or ':'.
"""

from __future__ import annotations

import re

CITATION = re.compile(r"\[([^\[\]\s:]+):(\d+)(?:-(\d+))?\]")
