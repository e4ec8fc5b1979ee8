"""The README, tried as a new user tries it: its console blocks run top to bottom in a temporary
copy of the repository, with the installed `nncli` on PATH; and the commands in
configs/seed-example.yaml's comment, run as written.

The README's convention (one sentence of it in the README's Development section):
- A ```console block holds commands after a `$ ` prompt (a line ending in `\\` continues on the
  next line, which may start with `> `) and, under each command, what it prints: stdout and stderr
  together, in the order a terminal shows them, as plain text (the output is piped).
- Every command exits 0, unless the block's next command is `echo $?`, which shows its exit code
  (and so checks it: `$?` is the previous command's status, as in one shell session).
- What a block shows is what the command prints, compared line by line after normalising what
  cannot be the same twice: runs of spaces count as one, durations (`in 0.1 s`), a table's
  `seconds` column and ISO dates are not compared. A line `...` or `…` alone stands for any number
  of lines (zero too); a line ending in `…` stands for a line beginning with what precedes the `…`.
  A command shown with no output must print nothing.
- A block right after the line `<!-- readme-test: skip -->` is not run: only for commands that
  cannot run in a test (installs, benchmarks that take minutes or gigabytes).
```bash and ```text blocks are examples and reference lists (with placeholder files such as
`new.csv`); they are not run.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
SEED_CONFIG = ROOT / "configs" / "seed-example.yaml"
BIN = Path(sys.executable).parent  # the installed nncli, and the python the README's commands call
# What a fresh clone gives a user to run commands on; the code is the installed nncli.
USER_FILES = ("configs", "datasets")
TIMEOUT = 60  # seconds per command: the README's trainings take well under one
SKIP_MARK = "<!-- readme-test: skip -->"
ELLIPSES = ("...", "…")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the README's commands are bash")


@dataclass
class Command:
    line: int  # README line of its `$ `
    text: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Block:
    line: int  # README line of its opening fence
    commands: list[Command]


def console_blocks(text: str) -> list[Block]:
    """The ```console blocks not marked to skip, in README order."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        kind, start = lines[i][3:].strip(), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"README.md:{start + 1}: code block never closed"
        previous = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        if kind == "console" and previous != SKIP_MARK:
            blocks.append(Block(start + 1, _commands(lines[start + 1:end], first_line=start + 2)))
        i = end + 1
    return blocks


def _commands(lines: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    continued = False
    for number, line in enumerate(lines, first_line):
        if continued:
            commands[-1].text += "\n" + line.removeprefix("> ")
        elif line.startswith("$ "):
            commands.append(Command(number, line[2:]))
        else:
            assert commands, f"README.md:{number}: a console block starts with output, not a `$ ` command"
            commands[-1].shown.append(line)
        continued = commands[-1].text.endswith("\\") and not commands[-1].shown
    return commands


DURATION = re.compile(r"\b\d+(?:\.\d+)? s\b")
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")


def normalise(lines: list[str]) -> list[str]:
    """Spaces collapsed; durations, a `seconds` column and dates replaced by placeholders."""
    result, timing_rows = [], False
    for line in lines:
        words = line.split()
        if " ".join(words) in ELLIPSES:
            result.append(" ".join(words))  # an elided stretch of a table keeps its header's column
            continue
        if timing_rows and words and words[0].isdigit():
            words[-1] = "<seconds>"
        else:
            timing_rows = bool(words) and words[-1] == "seconds"
        text = TIMESTAMP.sub("<date>", DURATION.sub("<duration>", " ".join(words)))
        result.append(text)
    while result and not result[-1]:
        result.pop()
    return result


def line_matches(shown: str, real: str) -> bool:
    if shown.endswith("…"):
        return real.startswith(shown[:-1].rstrip())
    return shown == real


def output_matches(shown: list[str], real: list[str]) -> bool:
    """Whether the shown lines match the real ones, `...`/`…` lines standing for any lines."""
    shown, real = normalise(shown), normalise(real)
    # reachable[j]: the shown lines so far can match the first j real lines.
    reachable = [True] + [False] * len(real)
    for line in shown:
        if line in ELLIPSES:
            for j in range(1, len(real) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j] and line_matches(line, real[j]) for j in range(len(real))]
    return reachable[-1]


def environment() -> dict[str, str]:
    """The user's environment, minus what would change nncli's output (its limits, widths)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("NNCLI_") and name not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave in the order a terminal shows them
    return env


def run(command: str, cwd: Path, previous_status: int = 0) -> tuple[int | None, str]:
    """Exit status (None after the timeout) and what the command printed on stdout and stderr."""
    script = f"(exit {previous_status}); {command}"  # so that `echo $?` shows the previous command's status
    # A session of its own, so that a timeout kills the whole pipeline, not only bash.
    with subprocess.Popen(["bash", "-c", script], cwd=cwd, env=environment(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return None, output
    return process.returncode, output


def check_block(block: Block, cwd: Path) -> str | None:
    """None if every command of the block does what the README shows, else why not (the block stops there)."""
    status = 0
    for i, command in enumerate(block.commands):
        status, output = run(command.text, cwd, status)
        where = f"README.md:{command.line}: $ {command.text}"
        if status is None:
            return f"{where}\n  still running after {TIMEOUT} s; output so far:\n{output}"
        shows_status = i + 1 < len(block.commands) and block.commands[i + 1].text.strip() == "echo $?"
        if status != 0 and not shows_status:
            return f"{where}\n  exit status {status} (the README shows none, so 0 is expected); output:\n{output}"
        real = output.splitlines()
        if not output_matches(command.shown, real):
            diff = "\n".join(difflib.unified_diff(normalise(command.shown), normalise(real), "README", "printed", lineterm="", n=2))
            return f"{where}\n  prints something else than the README shows (normalised diff):\n{diff}\n  printed:\n{output}"
    return None


def copy_of_repository(destination: Path) -> Path:
    """The repository's USER_FILES as committed: in a checkout, files the README's own commands
    left there (datasets/penguins.yaml from `nncli init`, say) are not copied, or a reader who
    walked the README would see its test fail on what the walk wrote."""
    tracked = _tracked_files()
    for name in USER_FILES:
        if tracked is None:
            shutil.copytree(ROOT / name, destination / name)
            continue
        for relative in tracked:
            if relative.parts[0] == name:
                (destination / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, destination / relative)
    return destination


def _tracked_files() -> list[Path] | None:
    """The files git tracks, or None outside a git checkout (a source archive: copy everything)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [Path(name) for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_readme_console_blocks_run_top_to_bottom(tmp_path):
    assert (BIN / "nncli").exists(), f"the nncli entry point is not installed next to {sys.executable}"
    blocks = console_blocks(README.read_text(encoding="utf-8"))
    # The walk-through trains, predicts, evaluates and inspects: a changed fence must not empty the test.
    assert sum(command.text.startswith("nncli ") for block in blocks for command in block.commands) >= 8
    workspace = copy_of_repository(tmp_path)
    failures = [failure for block in blocks if (failure := check_block(block, workspace))]
    assert not failures, f"{len(failures)} of {len(blocks)} README console blocks fail:\n\n" + "\n\n".join(failures)


SEED_COMMAND = re.compile(r"^#\s+(nncli .+?)\s+\(from (the repository root|this folder)\)$")


def test_seed_example_comment_commands_run_as_written(tmp_path):
    """Both commands of the comment (from the repository root, from configs/) train to w = 3; the second
    one finds the first one's model, which its --force replaces."""
    commands = [SEED_COMMAND.match(line).groups() for line in SEED_CONFIG.read_text(encoding="utf-8").splitlines()
                if SEED_COMMAND.match(line)]
    assert sorted(place for _, place in commands) == ["the repository root", "this folder"], commands
    workspace = copy_of_repository(tmp_path)
    for command, place in commands:
        cwd = workspace if place == "the repository root" else workspace / "configs"
        status, output = run(command, cwd)
        assert status == 0, f"configs/seed-example.yaml's comment: {command} (from {place}): exit {status}\n{output}"
        weights = np.load(workspace / "runs" / "seed-example.npz")["W1"]
        np.testing.assert_allclose(weights, [[3.0]], atol=1e-9)


# The runner itself: what it accepts and what it refuses.

SHOWN = ["Network", "  epoch  loss  seconds", "      1   8.0    0.003", "...", "Trained 1 epoch in 0.0 s", "proba 0.12…"]


@pytest.mark.parametrize("real, matches", [
    (["Network", "epoch   loss   seconds", "1  8.0  0.250", "Trained 1 epoch in 12.5 s", "proba 0.1234"], True),
    (["Network", "epoch loss seconds", "1 8.0 0.001", "a", "b", "Trained 1 epoch in 0.0 s", "proba 0.129", ""], True),
    (["Network", "epoch loss seconds", "1 8.1 0.003", "Trained 1 epoch in 0.0 s", "proba 0.12"], False),  # a number
    (["Network", "epoch loss seconds", "1 8.0 0.003", "Trained 1 epoch in 0.0 s", "proba 0.13"], False),  # a prefix
    (["Network", "epoch loss seconds", "1 8.0 0.003", "Trained 1 epoch in 0.0 s"], False),  # a missing line
    (["Network", "epoch loss seconds", "1 8.0 0.003", "Trained 1 epoch in 0.0 s", "proba 0.12", "extra"], False),
])
def test_output_comparison(real, matches):
    assert output_matches(SHOWN, real) is matches


def test_dates_are_not_compared():
    assert output_matches(["trained 30 epochs, 2026-11-25T21:44:15+00:00"], ["trained 30 epochs, 2027-01-02T03:04:05+00:00"])
    assert not output_matches(["trained 30 epochs, 2026-11-25T21:44:15+00:00"], ["trained 31 epochs, 2026-11-25T21:44:15+00:00"])


def test_blocks_are_parsed_and_failures_reported(tmp_path):
    text = "\n".join([
        "```console", "$ printf 'a\\nb\\n'", "a", "b", "$ echo one \\", "> two", "one two", "```",
        SKIP_MARK, "", "```console", "$ exit 3", "```",
        "```console", "$ false", "$ echo $?", "1", "$ echo shown wrong", "shown right", "```",
        "```bash", "$ exit 4", "```",
    ])
    blocks = console_blocks(text)
    assert [[c.text for c in b.commands] for b in blocks] == [["printf 'a\\nb\\n'", "echo one \\\ntwo"],
                                                             ["false", "echo $?", "echo shown wrong"]]
    assert check_block(blocks[0], tmp_path) is None
    failure = check_block(blocks[1], tmp_path)
    assert failure.startswith("README.md:18: $ echo shown wrong") and "-shown right" in failure and "+shown wrong" in failure
    assert "exit status 1" in check_block(Block(1, [Command(2, "false")]), tmp_path)


def test_a_command_that_hangs_is_stopped_with_its_pipeline(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "TIMEOUT", 1)
    assert run("echo started; sleep 30 | cat", tmp_path) == (None, "started\n")
    assert "still running after 1 s" in check_block(Block(1, [Command(2, "sleep 30 | cat")]), tmp_path)


def test_the_copy_holds_the_committed_files_not_what_a_walk_through_left(tmp_path):
    """A reader who ran the README (`nncli init datasets/penguins.csv` writes datasets/penguins.yaml)
    and then its test command must not see the README test fail on that file."""
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored", *USER_FILES], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    left = {line[3:] for line in untracked.splitlines() if line.startswith(("??", "!!"))}
    workspace = copy_of_repository(tmp_path)
    copied = {str(path.relative_to(workspace)) for path in workspace.rglob("*") if path.is_file()}
    assert "datasets/digits.csv" in copied and "configs/digits.yaml" in copied
    assert not copied & left
