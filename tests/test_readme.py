"""Every ```python block of README.md runs, in order, in one namespace, as a reader would run them.

The reader's setup is reproduced first: `metaspn-store demo demo-workspace` in an empty folder,
which is then the working directory. A ```text block that follows a python block with nothing
but blank lines between them is that block's expected stdout and is compared exactly.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([\w-]*)\s*$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    expected_output: str | None = None


def readme_blocks(text: str) -> list[Block]:
    """Fenced blocks in order; an output block is attached to the python block before it."""
    blocks: list[Block] = []
    lines = text.splitlines(keepends=True)
    i = 0
    last_end = -1
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md:{start + 1}: unclosed code fence")
        block = Block(start + 1, match.group(1), "".join(body))
        between = "".join(lines[last_end + 1 : start]) if last_end >= 0 else "x"
        if block.language == "text" and blocks and blocks[-1].language == "python" and not between.strip():
            blocks[-1].expected_output = block.text
        else:
            blocks.append(block)
        last_end = i
        i += 1
    return blocks


def test_block_parser_attaches_outputs() -> None:
    text = "```python\nprint(1)\n```\n\n```text\n1\n```\nprose\n```text\nnot an output\n```\n```bash\nls\n```\n"
    blocks = readme_blocks(text)
    assert [(b.language, b.expected_output) for b in blocks] == [("python", "1\n"), ("text", None), ("bash", None)]


PYTHON_BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.language == "python"]


def test_readme_has_a_quickstart_and_runnable_blocks() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("## Quickstart") < text.index("## Who uses it and how")
    assert "## Glossary" in text and "## Where to go next" in text
    assert len(PYTHON_BLOCKS) >= 10
    assert sum(b.expected_output is not None for b in PYTHON_BLOCKS) >= 5


def test_every_python_block_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "metaspn_store", "demo", "demo-workspace"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for block in PYTHON_BLOCKS:
        out = io.StringIO()
        code = compile(block.text, f"README.md:{block.line}", "exec")
        with contextlib.redirect_stdout(out):
            try:
                exec(code, namespace)  # noqa: S102 - the README's own code, on purpose
            except Exception as exc:
                raise AssertionError(f"README.md block at line {block.line} failed: {exc!r}") from exc
        if block.expected_output is not None:
            assert out.getvalue() == block.expected_output, f"README.md block at line {block.line}"
    # the blocks wrote where the README says, relative to the reader's folder
    assert (tmp_path / "quickstart-workspace" / "store" / "cold").is_dir()
    assert not (tmp_path / "workspace").exists()


def test_py_typed_marker_is_shipped() -> None:
    """Type checkers use the package's annotations only if the wheel carries py.typed."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    root = README.parent
    assert (root / "metaspn_store" / "py.typed").is_file()
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["metaspn_store"]
