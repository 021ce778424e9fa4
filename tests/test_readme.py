"""README.md, docs/*.md and .ci/run stay in step with the code: CI runs the README's own
commands, and every link, path and command written in README.md and docs/*.md is checked.

Cheap on purpose: nothing is trained, nothing downloaded, no store touched. The only cnnlab
module imported is ``cnnlab.cli`` (its parser, and ``main`` for the ``cnnlab shapes`` examples).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import io
import os
import re
import shlex
import tomllib
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_WORDS = 1500  # a three-minute read

# A fenced block: ```lang ... ``` with both fences at the start of a line.
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
# An inline code span (one backtick each side; it may wrap onto the next line).
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
# A markdown link or image: [text](target) or ![alt](target "title").
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# A repository path the pages name, e.g. experiments/quickstart.toml, benchmarks/anytime.py,
# cnnlab/spec/shapes.py or tests/spec/test_layers.py.
PATH = re.compile(
    r"(?<![\w./-])((?:experiments|benchmarks|scripts|docs|tests|cnnlab)/[\w./*<>-]*)")
# A placeholder in a path or a command (FILE, STUDY, DBHOST): capitals, digits and underscores.
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ">", ">>", "<", "$"}


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_opens_with_the_two_commands() -> None:
    first, second = _blocks()[:2]
    assert "pip install -e ." in first and "cnnlab " in first
    assert "pytest" in second


def test_ci_runs_the_readme_test_command() -> None:
    test_command = [line for line in _blocks()[1].splitlines() if not line.startswith("#")][0]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


# --- reading the pages ----------------------------------------------------------------------


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


def _fences(page: Path) -> list[tuple[str, str]]:
    """Every fenced block of a page: (language, body)."""
    return FENCE.findall(page.read_text())


def _prose(page: Path) -> str:
    """A page without its fenced blocks."""
    return FENCE.sub("", page.read_text())


def _spans(page: Path) -> list[str]:
    """Every inline code span of a page's prose, a wrapped one joined onto one line."""
    return [" ".join(span.split()) for span in SPAN.findall(_prose(page))]


def _command_lines(page: Path) -> list[str]:
    """The shell command lines of a page's ```bash/```sh blocks and the ``$ `` lines of its
    ```console blocks, continuation lines joined."""
    lines = []
    for lang, body in _fences(page):
        if lang in ("bash", "sh", "shell"):
            joined = body.replace("\\\n", " ")
            lines += [line for line in joined.splitlines() if not line.lstrip().startswith("#")]
        elif lang == "console":
            lines += [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    return [line for line in lines if line.strip()]


def _segments(line: str) -> list[list[str]]:
    """A shell line as simple commands (split at &&, ;, | ...), each a list of words, without
    its comment, leading environment assignments and ``time``/``/usr/bin/time -v``."""
    line = re.sub(r"(^|\s)#.*$", "", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: not a command line
        return []
    segments: list[list[str]] = [[]]
    for word in words:
        if word in SHELL_OPERATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    out = []
    for words in segments:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words and Path(words[0]).name == "time":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[1:]
        if words:
            out.append(words)
    return out


def _invocations(text_lines: list[str], program: str) -> list[list[str]]:
    """The argument lists of every command among ``text_lines`` whose program is ``program``
    (given bare or by a path such as ``.venv/bin/cnnlab``)."""
    found = []
    for line in text_lines:
        for words in _segments(line):
            if Path(words[0]).name == program:
                found.append(words[1:])
    return found


# --- the README is short, and links every page ----------------------------------------------


def test_readme_is_a_three_minute_read() -> None:
    words = len(README.read_text().split())  # as `wc -w README.md` counts
    assert words <= MAX_README_WORDS, (
        f"README.md has {words} words, over {MAX_README_WORDS}: move detail to a docs/ page")


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page))


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target))


def _slugs(page: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings."""
    slugs = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", _prose(page), re.M):
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
        slugs.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return slugs


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_points_to_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in _links(page):
        if _is_external(target):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists() or REPO not in [where, *where.parents]:
            broken.append(f"{target} (no file {path})")
        elif anchor and where.suffix == ".md" and anchor not in _slugs(where):
            broken.append(f"{target} (no heading #{anchor} in {where.relative_to(REPO)})")
    assert not broken, f"{_rel(page)}: broken links: {broken}"


def test_every_image_in_docs_is_shown() -> None:
    shown = {(page.parent / target).resolve() for page in PAGES for target in _links(page)
             if not _is_external(target)}
    unshown = [_rel(image) for image in sorted((REPO / "docs").glob("*.png"))
               if image.resolve() not in shown]
    assert not unshown, f"images no page shows: {unshown}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / target.partition("#")[0]).resolve() for target in _links(README)
              if not _is_external(target)}
    unlinked = [_rel(page) for page in DOCS if page.resolve() not in linked]
    assert not unlinked, f"docs pages README.md does not link: {unlinked}"


# --- every path and command is real ---------------------------------------------------------


def _has_placeholder(path: str) -> bool:
    """Whether a path stands for others: experiments/FILE, benchmarks/X.py."""
    return any(PLACEHOLDER.match(part.split(".")[0]) for part in path.split("/")[1:])


def _named_paths(page: Path) -> set[str]:
    texts = [body for _, body in _fences(page)] + _spans(page)
    paths = set()
    for text in texts:
        for path in PATH.findall(text):
            path = path.rstrip(".,:;")
            if _has_placeholder(path):
                continue
            if "<" in path:
                continue  # a pattern such as mlruns/<experiment>-<hash>/
            paths.add(path)
    return paths


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_named_repository_path_exists(page: Path) -> None:
    missing = sorted(path for path in _named_paths(page)
                     if not (any(REPO.glob(path)) if "*" in path else (REPO / path).exists()))
    assert not missing, f"{_rel(page)} names paths that do not exist: {missing}"


@functools.cache
def _parser() -> argparse.ArgumentParser:
    from cnnlab.cli import build_parser

    return build_parser()


def _parse(argv: list[str]) -> str | None:
    """None if cnnlab's own parser accepts ``argv``, else its error message."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            _parser().parse_args(argv)
    except SystemExit as done:
        if done.code not in (0, None):
            return err.getvalue().strip() or f"exit {done.code}"
    return None


def _subparser(parser: argparse.ArgumentParser, word: str) -> argparse.ArgumentParser | None:
    """The subcommand ``word`` of ``parser``, if it is one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and word in action.choices:
            return action.choices[word]
    return None


def _placeholders_dropped(argv: list[str]) -> list[str]:
    """``argv`` without the options whose value is a placeholder (`--workers N`, `--top K`):
    the option is kept if cnnlab's parser does not know it, so that the parse fails."""
    parser, kept, words = _parser(), [], iter(argv)
    for word in words:
        parser = _subparser(parser, word) or parser
        option, _, value = word.partition("=")
        action = parser._option_string_actions.get(option) if option.startswith("--") else None
        if action is not None and action.nargs != 0:
            if value and PLACEHOLDER.match(value):
                continue
            if not value:
                following = next(words, None)
                if following is not None and PLACEHOLDER.match(following):
                    continue
                kept.append(word)
                if following is not None:
                    kept.append(following)
                continue
        kept.append(word)
    return kept


def _unknown_names(argv: list[str]) -> list[str]:
    """The words of ``argv`` that name no subcommand or option of cnnlab's parser: for a code
    span that leaves out required arguments, such as `cnnlab study run`."""
    parser, unknown = _parser(), []
    for word in argv:
        if (sub := _subparser(parser, word)) is not None:
            parser = sub
        elif word.startswith("--") and word.split("=")[0] not in parser._option_string_actions:
            unknown.append(word)
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_cnnlab_command_parses(page: Path) -> None:
    """Every `cnnlab ...` line of a bash or console block parses with cnnlab's own argument
    parser; every `cnnlab ...` code span too, or, if it leaves out a required argument (`cnnlab
    evaluate`), names only subcommands and options that exist. An option's value may be a
    placeholder in capitals (`--workers N`): the option must exist."""
    wrong = []
    for argv in _invocations(_command_lines(page), "cnnlab"):
        if (error := _parse(_placeholders_dropped(argv))) is not None:
            wrong.append(f"cnnlab {shlex.join(argv)}: {error}")
    for argv in _invocations(_spans(page), "cnnlab"):
        error = _parse(_placeholders_dropped(argv))
        if error is not None and ("arguments are required" not in error
                                  or _unknown_names(argv)):
            wrong.append(f"`cnnlab {shlex.join(argv)}`: {error}")
    assert not wrong, f"{_rel(page)}:\n" + "\n".join(wrong)


def test_some_commands_were_checked() -> None:
    """The readers above find what they are meant to (a guard against a regex that matches
    nothing)."""
    lines = [line for page in PAGES for line in _command_lines(page)]
    spans = [span for page in PAGES for span in _spans(page)]
    assert len(_invocations(lines, "cnnlab")) >= 10
    assert len(_invocations(spans, "cnnlab")) >= 20
    assert len(_script_calls()) >= 10
    assert sum(len(_named_paths(page)) for page in PAGES) >= 20


def _script_calls() -> list[tuple[str, str, list[str]]]:
    """(page, script, its options) for every Python script a page runs: `python X.py ...`,
    `.venv/bin/python X.py ...`, or a span starting with the script, `benchmarks/X.py ...`."""
    calls = []
    for page in PAGES:
        for text in _command_lines(page) + _spans(page):
            for words in _segments(text):
                if Path(words[0]).name.startswith("python") and len(words) > 1:
                    script, args = words[1], words[2:]
                elif PATH.fullmatch(words[0]) and words[0].endswith(".py"):
                    script, args = words[0], words[1:]
                else:
                    continue
                if script.endswith(".py") and not _has_placeholder(script):
                    options = [a.split("=")[0] for a in args if a.startswith("--")]
                    calls.append((_rel(page), script, options))
    return calls


@functools.cache
def _script_options(script: str) -> frozenset[str]:
    """The option strings a script's argparse parser takes, read from its source (the scripts
    import Optuna, Keras or cnnlab at their top; reading them is cheaper than running
    ``--help``, and does not depend on what they import)."""
    text = (REPO / script).read_text()
    if script.startswith("experiments/") and "cnnlab.study_main(" in text:
        return _study_run_options()  # A study script: `python NAME.py` is `study run NAME.py`.
    tree = ast.parse(text)
    options = {"--help"}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            options |= {arg.value for arg in node.args
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                        and arg.value.startswith("-")}
    return frozenset(options)


def _study_run_options() -> frozenset[str]:
    """The options `cnnlab study run` takes (a study script's: ``cnnlab.study_main``)."""
    from cnnlab import cli

    study = cli.build_parser()._subparsers._group_actions[0].choices["study"]
    run = study._subparsers._group_actions[0].choices["run"]
    return frozenset(o for action in run._actions for o in action.option_strings)


def test_every_script_run_names_options_it_takes() -> None:
    wrong = []
    for page, script, options in _script_calls():
        if not (REPO / script).is_file():
            wrong.append(f"{page}: {script} does not exist")
            continue
        unknown = [option for option in options if option not in _script_options(script)]
        if unknown:
            wrong.append(f"{page}: {script} takes no {', '.join(unknown)}")
    assert not wrong, "\n".join(wrong)


# --- examples that are run or parsed --------------------------------------------------------


def _shapes_examples() -> list[tuple[str, str, str]]:
    """(page, command, printed output) for each `$ cnnlab shapes ...` of a ```console block."""
    examples = []
    for page in PAGES:
        for lang, body in _fences(page):
            if lang != "console" or not body.startswith("$ cnnlab shapes"):
                continue
            for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
                if chunk:
                    command, _, output = chunk.partition("\n")
                    examples.append((_rel(page), command[2:], output))
    return examples


@pytest.mark.parametrize("page,command,output", _shapes_examples(),
                         ids=[f"{page}: {command}" for page, command, _ in _shapes_examples()])
def test_shapes_example_prints_what_the_page_shows(page: str, command: str, output: str) -> None:
    from cnnlab.cli import main

    printed = io.StringIO()
    with (mock.patch.dict(os.environ), contextlib.redirect_stdout(printed),
          contextlib.redirect_stderr(printed)):
        main(shlex.split(command)[1:])
    assert printed.getvalue().splitlines() == output.splitlines()


def test_there_are_shapes_examples() -> None:
    assert len(_shapes_examples()) >= 3


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_toml_block_is_toml(page: Path) -> None:
    for lang, body in _fences(page):
        if lang == "toml":
            tomllib.loads(body)


def test_readme_study_file_is_the_first_commands() -> None:
    """README shows the study file its first command runs, comments shortened: the same
    values."""
    first = _blocks()[0]
    path = re.search(r"study run (experiments/\S+\.toml)", first).group(1)
    shown = next(body for lang, body in _fences(README) if lang == "toml")
    with open(REPO / path, "rb") as file:
        assert tomllib.loads(shown) == tomllib.load(file)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_study_file_shown_passes_study_check(page: Path) -> None:
    """A TOML block that is a whole study file (a name and a [search] or [design]) is what
    `cnnlab study check` accepts: read, checked, its sampler and pruner dry-run in Optuna and
    enough of its space trainable; nothing is written."""
    from cnnlab.search.config import check_runnable, parse_study

    for lang, body in _fences(page):
        data = tomllib.loads(body) if lang == "toml" else {}
        if "name" in data and ("search" in data or "design" in data):
            check_runnable(parse_study(data, where=f"{page.name}'s study file"))
