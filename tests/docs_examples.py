"""The code examples of README.md and docs/*.md, and how tests/test_docs.py runs them.

`read_examples` finds every fenced block (with markdown-it, the CommonMark parser `rich` ships),
`substitute` rewrites a block's text by the test's substitution table, and `BlockRunner` runs
shell blocks in bash and Python blocks in an interpreter, with `attrnet` served by
tests/docs_forkserver.py. A block whose first line starts with `SKIP_MARKER` is not run; the rest
of that line is the reason, shown in the doc itself.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from markdown_it import MarkdownIt

__all__ = ["RUN_TAGS", "TEXT_TAGS", "SKIP_MARKER", "Example", "Outcome", "BlockRunner", "read_examples",
           "doc_pages", "substitute", "set_option"]

RUN_TAGS = ("sh", "python")
# blocks shown, never run: output samples, file formats, layouts, diagrams, formulas
TEXT_TAGS = ("text", "json", "csv")
SKIP_MARKER = "# not run by tests/test_docs.py:"
FORKSERVER = Path(__file__).with_name("docs_forkserver.py")


@dataclass(frozen=True)
class Example:
    """One fenced code block of a docs page."""

    page: str      # path relative to the repository, e.g. "docs/export.md"
    number: int    # 1-based among the page's fenced blocks
    line: int      # 1-based line of the opening fence
    tag: str       # the fence's language tag
    text: str

    @property
    def runs(self) -> bool:
        return self.tag in RUN_TAGS

    @property
    def skip_reason(self) -> str | None:
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        return first[len(SKIP_MARKER):].strip() if first.startswith(SKIP_MARKER) else None

    @property
    def name(self) -> str:
        return f"{self.page} block {self.number} (line {self.line})"


def doc_pages(root: Path) -> list[Path]:
    """README.md, then docs/*.md in name order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def read_examples(root: Path) -> tuple[list[Example], list[str]]:
    """Every fenced block of every page, and the markup problems found (one line each)."""
    parser = MarkdownIt("commonmark")
    examples, problems = [], []
    for path in doc_pages(root):
        page = path.relative_to(root).as_posix()
        number = 0
        for token in parser.parse(path.read_text(encoding="utf-8")):
            line = token.map[0] + 1 if token.map else 0
            if token.type == "code_block":
                problems.append(f"{page}:{line}: indented code block: make it a fenced block with a language tag")
            if token.type != "fence":
                continue
            number += 1
            tag = token.info.split()[0] if token.info.strip() else ""
            if tag not in RUN_TAGS + TEXT_TAGS:
                problems.append(f"{page}:{line}: fenced block tagged {tag!r}: use one of "
                                f"{', '.join(RUN_TAGS + TEXT_TAGS)} (or add the tag to docs_examples.py)")
            examples.append(Example(page, number, line, tag, token.content))
    return examples, problems


# ----------------------------------------------------------------------------- substitution

def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) physical line index of each command line, joining backslash continuations."""
    lines, spans, start = text.splitlines(), [], 0
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("\\"):
            spans.append((start, i))
            start = i + 1
    if start < len(lines):
        spans.append((start, len(lines) - 1))
    return spans


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line's code and its trailing ` # comment` (quotes are not parsed: the docs quote no #)."""
    match = re.search(r"\s#\s", line)
    return (line[:match.start()], line[match.start():]) if match else (line, "")


def set_option(text: str, command: str, option: str, value: str) -> str:
    """Give every shell command matching the regex `command` `option value`: replace the value where
    the option is given, else append it to the command's last line. The line count never changes."""
    lines = text.splitlines()
    for first, last in _logical_lines(text):
        joined = " ".join(_split_comment(lines[i])[0] for i in range(first, last + 1))
        if not re.search(command, joined):
            continue
        given = re.compile(rf"({re.escape(option)}[ =])\S+")
        if given.search(joined):
            for i in range(first, last + 1):
                code, comment = _split_comment(lines[i])
                lines[i] = given.sub(lambda m: m.group(1) + value, code) + comment
        else:
            code, comment = _split_comment(lines[last])
            lines[last] = f"{code.rstrip()} {option} {value}" + (f"  {comment.lstrip()}" if comment else "")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def substitute(text: str, rules: list[tuple[str, str | Callable[[str], str]]], values: dict[str, str]) -> str:
    """Apply the table's rules in order: a (regex, replacement) pair is `re.sub` with `{name}`
    placeholders filled from `values`; a (label, function) pair is the function applied to the text."""
    for pattern, replacement in rules:
        if callable(replacement):
            text = replacement(text)
        else:
            text = re.sub(pattern, replacement.format(**values), text)
    return text


# ----------------------------------------------------------------------------- running

@dataclass
class Outcome:
    """What running one block gave."""

    returncode: int
    seconds: float
    stdout: str
    stderr: str
    failed_line: int | None   # the page's line of the failing command (shell), when known
    timed_out: bool = False

    def tail(self, lines: int = 25) -> str:
        text = self.stderr.strip() or self.stdout.strip() or "(no output)"
        return "\n".join(text.splitlines()[-lines:])


class BlockRunner:
    """Runs blocks in a working folder: shell in `bash -e -o pipefail`, Python in an interpreter.

    With `fresh=False`, `attrnet` and Python blocks run in processes forked from one interpreter
    that imported torch and the CLI once (tests/docs_forkserver.py); `fresh=True` starts a new
    interpreter for each (slower).
    """

    def __init__(self, fresh: bool = False) -> None:
        self.fresh = fresh
        self.venv_bin = Path(sys.executable).parent
        self._folder = Path(tempfile.mkdtemp(prefix="attrnet-docs-"))
        self._socket = self._folder / "server.sock"
        self._server: subprocess.Popen | None = None
        self._shim = [sys._base_executable, "-I", "-S", str(FORKSERVER), str(self._socket)]
        if not fresh:
            (self._folder / "bin").mkdir()
            shim = self._folder / "bin" / "attrnet"
            shim.write_text("#!/bin/sh\nexec " + " ".join(f"'{part}'" for part in self._shim) + ' attrnet "$@"\n')
            shim.chmod(0o755)
            self._server = subprocess.Popen([sys.executable, str(FORKSERVER), "serve", str(self._socket)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def wait_ready(self) -> None:
        if self._server is not None and self._server.stdout is not None:
            if self._server.stdout.readline().strip() != b"ready":
                raise RuntimeError("the docs test's fork server did not start (see stderr above)")
            self._server.stdout.close()
            self._server.stdout = None

    def close(self) -> None:
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)
            self._server = None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        path = [str(self.venv_bin), env.get("PATH", "")]
        if not self.fresh:
            path.insert(0, str(self._folder / "bin"))
        env.update(PATH=os.pathsep.join(path), MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        return env

    def run(self, tag: str, text: str, cwd: Path, first_line: int, timeout: float, label: str) -> Outcome:
        """Run a block whose content starts on the page's line `first_line`; scripts are padded with
        blank lines so that bash's $LINENO and Python's tracebacks give the page's line numbers."""
        scripts = cwd / ".docs"
        scripts.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")
        if tag == "sh":
            trap = 'trap \'echo "docs test: line $LINENO failed: $BASH_COMMAND" >&2\' ERR'
            script = scripts / f"{stem}.sh"
            script.write_text(f"set -eE -o pipefail; {trap}\n" + "\n" * (first_line - 2) + text)
            command = ["bash", str(script)]
        else:
            script = scripts / f"{stem}.py"
            script.write_text("\n" * (first_line - 1) + text)
            command = [sys.executable, str(script)] if self.fresh else [*self._shim, "python", str(script)]
        out, err = scripts / f"{stem}.stdout", scripts / f"{stem}.stderr"
        start, timed_out = time.perf_counter(), False
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(command, cwd=cwd, env=self.environment(), stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        seconds = time.perf_counter() - start
        stderr_text = err.read_text(errors="replace")
        failed = re.findall(r"docs test: line (\d+) failed", stderr_text) or \
            re.findall(rf'File "{re.escape(str(script))}", line (\d+)', stderr_text)
        return Outcome(proc.returncode, seconds, out.read_text(errors="replace"), stderr_text,
                       int(failed[-1]) if failed else None, timed_out)
