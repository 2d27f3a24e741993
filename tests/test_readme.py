"""The README's Python snippets run as printed, and what they say they print is what they print.

Every ```python block of README.md runs, in the README's order and in one namespace (as a
reader pastes them into one session), in a temporary directory. A ``print(...)`` line with a
comment after it (or on the next line) states its output: the comment is matched against what
the block printed, with ``...`` standing for any digits or text left out. A block that cannot
run here is preceded by the line ``<!-- readme-test: skip (why) -->`` (hidden on the rendered page); each
shows up below as a skipped test with that reason.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import backprop as bp

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip \((.+)\) -->")


def python_blocks() -> list[tuple[int, str, str | None]]:
    """(first line number, code, reason to skip or None) of each ```python block."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            end = lines.index("```", i + 1)
            marker = SKIP.fullmatch(lines[i - 1].strip()) if i else None
            blocks.append((i + 2, "\n".join(lines[i + 1:end]) + "\n", marker and marker.group(1)))
            i = end
        i += 1
    return blocks


def stated_outputs(code: str) -> list[re.Pattern]:
    """The outputs the block's print() lines state in their trailing comments, as patterns."""
    patterns, lines = [], code.splitlines()
    for line, following in zip(lines, [*lines[1:], ""]):
        match = re.match(r"\s*print\(.*\)\s+# (.+)$", line)  # the comment after it
        if not match and line.lstrip().startswith("print("):
            match = re.match(r"# (.+)$", following)  # or on the next line, when too long
        if match:
            text = match.group(1).strip()
            patterns.append(re.compile(".*?".join(re.escape(part) for part in text.split("..."))))
    return patterns


BLOCKS = python_blocks()


def test_readme_python_blocks_run_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for line, code, reason in BLOCKS:
        if reason:
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
        printed = out.getvalue()
        for pattern in stated_outputs(code):
            assert pattern.search(printed), (f"README.md line {line}: the comment says "
                                             f"{pattern.pattern!r}, the block printed:\n{printed}")


@pytest.mark.parametrize("line, reason", [(line, reason) for line, _, reason in BLOCKS if reason],
                         ids=lambda v: f"line {v}" if isinstance(v, int) else "")
def test_readme_block_not_run_here(line, reason):
    pytest.skip(f"README.md block at line {line}: {reason}")


def test_the_readme_finds_its_blocks_and_their_stated_outputs():
    assert len(BLOCKS) >= 7 and sum(1 for *_, reason in BLOCKS if reason) == 3
    stated = [p.pattern for _, code, reason in BLOCKS if not reason for p in stated_outputs(code)]
    assert any("accuracy" in p for p in stated) and len(stated) == 12


def test_readme_lists_every_setting():
    text = README.read_text(encoding="utf-8")
    head = "Settings are the keys of `bp.runner.DEFAULTS` ("
    start = text.index(head) + len(head)
    listed = re.findall(r"`(\w+)`", text[start:text.index(")", start)])
    assert listed == list(bp.runner.DEFAULTS)
