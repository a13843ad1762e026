"""Every Python example in README.md and docs/*.md runs as written.

A ```` ```python ```` block is either a complete program, run as it stands, or a
fragment: the line before its fence is ``<!-- fragment: tests/docs/examples/NAME.py -->``
and that file is a complete program containing the fragment's lines, in order (so the
page cannot drift from the file). Either way the program runs in a subprocess with
``REDIS_URL`` / ``POSTGRES_URL`` naming throwaway databases on the test servers (the
examples read those variables, falling back to localhost), and must exit 0 within the
timeout. An ``<!-- output: TEXT -->`` line right after the block's closing fence says
what its output must contain.

Any other fenced block (``sh``, ``text``, output listings) is not Python and is not run
here; the `$ trio-sched ...` listings in docs/cron.md are checked by tests/test_cli.py,
and every command line of a ``sh`` block is checked by `test_shell_commands_exist`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = re.compile(r"<!-- fragment: (\S+) -->")
OUTPUT = re.compile(r"<!-- output: (.+?) -->")
TIMEOUT = 90.0


@dataclass(frozen=True)
class Example:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    language: str
    completed_in: Path | None  # a fragment's complete program
    expected_output: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found: list[Example] = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        index = 0
        while index < len(lines):
            fence = re.fullmatch(r"```(\w*)\s*", lines[index])
            if fence is None:
                index += 1
                continue
            start = index
            end = start + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            previous = lines[start - 1] if start else ""
            fragment = FRAGMENT.fullmatch(previous.strip())
            after = lines[end + 1].strip() if end + 1 < len(lines) else ""
            output = OUTPUT.fullmatch(after)
            found.append(
                Example(
                    page=page,
                    line=start + 1,
                    code="\n".join(lines[start + 1 : end]) + "\n",
                    language=fence.group(1),
                    completed_in=ROOT / fragment.group(1) if fragment else None,
                    expected_output=output.group(1) if output else None,
                )
            )
            index = end + 1
    return found


PYTHON = [e for e in examples() if e.language == "python"]
SHELL = [e for e in examples() if e.language == "sh"]


def test_the_pages_have_python_examples() -> None:
    # The collector itself can fail: it must see the README's and the docs' blocks.
    pages = {e.page.name for e in PYTHON}
    assert {"README.md", "jobs.md", "runtime.md", "cron.md", "backends.md"} <= pages
    assert all(e.completed_in is None or e.completed_in.is_file() for e in PYTHON), [
        e.id for e in PYTHON if e.completed_in is not None and not e.completed_in.is_file()
    ]


def _code(line: str) -> str:
    """`line` without its trailing comment (two spaces then ``#``) and outer spaces."""
    return line.split("  #", 1)[0].strip()


def _meaningful(code: str) -> list[str]:
    """The fragment's lines that must appear in its program: stripped, without blank
    lines, comment-only lines or trailing comments."""
    kept = []
    for line in code.splitlines():
        text = _code(line)
        if text and not text.startswith("#"):
            kept.append(text)
    return kept


def _program(example: Example) -> str:
    if example.completed_in is None:
        return example.code
    program = example.completed_in.read_text()
    available = [_code(line) for line in program.splitlines()]
    position = 0
    for wanted in _meaningful(example.code):
        try:
            position = available.index(wanted, position) + 1
        except ValueError:
            pytest.fail(
                f"{example.id}: fragment line {wanted!r} is not in "
                f"{example.completed_in.relative_to(ROOT)} (in order)"
            )
    return program


@pytest.mark.parametrize("example", PYTHON, ids=[e.id for e in PYTHON])
def test_python_example_runs(
    example: Example,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    program = _program(example)
    env = dict(os.environ)
    if "REDIS_URL" in program:
        env["REDIS_URL"] = request.getfixturevalue("example_redis_url")
    if "POSTGRES_URL" in program:
        env["POSTGRES_URL"] = request.getfixturevalue("example_postgres_url")
    script = tmp_path / "example.py"
    script.write_text(program)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{example.id} failed:\n{done.stdout}\n{done.stderr}"
    if example.expected_output is not None:
        assert example.expected_output in done.stdout, done.stdout


def _commands() -> list[tuple[str, str]]:
    """(example id, command) for every command of every ``sh`` block, split at ``&&``."""
    found = []
    for example in SHELL:
        for line in example.code.splitlines():
            line = _code(line)
            if line and not line.startswith("#"):
                found += [(example.id, c) for c in re.split(r"\s*&&\s*", line)]
    return found


COMMANDS = _commands()
EXTRAS = set(re.findall(r"^([a-z]+) = \[", (ROOT / "pyproject.toml").read_text(), re.M))
CI = (ROOT / ".ci" / "run").read_text()
DEMO_SECONDS = 1.0  # the docs' demo runs for longer; a second shows it starts and fires


def test_the_pages_have_shell_commands() -> None:
    assert any("demo" in command for _, command in COMMANDS)
    assert any("validate" in command for _, command in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}" for w, c in COMMANDS])
def test_shell_command_works(where: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A CLI command runs (in-process) and exits 0; an install names extras that exist;
    the test command is the one `.ci/run` runs."""
    words = shlex.split(command)
    if words[:2] == ["python", "-m"]:
        words = [words[2].replace("_", "-"), *words[3:]]
    if words[:2] == ["pip", "install"]:
        target = words[-1]
        extras = re.fullmatch(r"\.(?:\[([a-z,]+)\])?", target)
        assert extras is not None, (where, command)
        assert set(filter(None, (extras.group(1) or "").split(","))) <= EXTRAS, (where, command)
        return
    if words[0] == "pytest":
        assert command in CI, f"{where}: {command!r} is not what .ci/run runs"
        return
    assert words[0] == "trio-sched", f"{where}: {command!r} is not a command these docs know"
    args = words[1:]
    if args[:1] == ["demo"] and "--seconds" in args:
        args[args.index("--seconds") + 1] = f"{DEMO_SECONDS:g}"
    from trio_sched.__main__ import main

    status = main(args)
    out = capsys.readouterr()
    assert status == 0, f"{where}: {command!r} exited {status}:\n{out.out}{out.err}"
