"""A small mutation tester: do the tests notice when the code is wrong?

Usage (from the repository root; ``make mutate`` runs it over ``MUTATE_TARGETS``)::

    python -m tools.mutate threadhost/policy.py:tests/test_policy.py
    python -m tools.mutate -j 2 'threadhost/gate/*.py:tests/test_gate_*.py'
    python -m tools.mutate --list threadhost/policy.py:tests/test_policy.py

Each TARGET is ``MODULE_PATH:TEST_PATH[,TEST_PATH...]`` (shell-style globs allowed on both
sides, expanded here). For every module the tool parses the source with :mod:`ast`,
generates *mutants* — small, plausible bugs, one per mutant — and runs
``pytest -x -q -p no:cacheprovider TESTS`` against each. A mutant the tests fail on (or
time out on) is *killed*; one they pass with *survived*: no test pins that behaviour.

Mutations: comparison swaps (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``,
``in``/``not in``); arithmetic ``+``/``-``, ``*``/``/`` (also augmented ``+=`` ...);
``and``/``or``; ``not x`` -> ``x``; numbers ``0``/``1`` swapped, others ``n`` -> ``n+1``;
``True``/``False``; ``return x`` -> ``return None``; a statement in a block replaced by
``pass``; ``min``/``max``. Never mutated: docstrings, strings, f-strings (messages),
``__all__``, type annotations, logging calls, ``if TYPE_CHECKING:`` blocks, and the
mutants excluded by a pragma on the line where their code starts, for *equivalent*
mutants (they cannot change behaviour; give the reason after the pragma)::

    x = 0.0  # mutate: skip - every mutant of this line: always set before it is read
    if a < 1:  # mutate: skip[with '<='] - only those whose description contains TEXT

The working tree is never written: the tree is copied once per worker (``-j N``) into a
temporary directory, mutants are written there (the original is restored after each run,
in a ``finally``, and on Ctrl-C), and pytest runs in the copy with ``PYTHONPATH`` pointing
at it. Before mutating, the tests must pass unmutated in the copy (the baseline), and the
module must be imported from the copy.

Exit status: 0, or 1 if a score is below ``--fail-under``, 2 on a usage error or a
failing baseline, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["Mutant", "Result", "Target", "generate_mutants", "main", "parse_target"]

PRAGMA = re.compile(r"#\s*mutate:\s*skip(?:\[([^\]]+)\])?")
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "*.egg-info",
    "build",
    "dist",
    "node_modules",
)
LOG_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)
KILLED, SURVIVED, TIMEOUT, ERROR = "killed", "survived", "timeout", "error"

_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
}
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.And: "and",
    ast.Or: "or",
}


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutant:
    """One small change to one file: bytes ``[start, end)`` become ``replacement``."""

    path: str  # as given on the command line, relative to the root
    line: int
    description: str
    start: int
    end: int
    replacement: bytes

    def apply(self, original: bytes) -> bytes:
        return original[: self.start] + self.replacement + original[self.end :]

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.description}"


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_logging_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    owner = node.func.value
    name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
    if name == "warnings" and node.func.attr == "warn":
        return True
    return node.func.attr in LOG_METHODS and "log" in str(name).lower()


def _is_string(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def _skipped_block(node: ast.stmt) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` blocks, ``__all__ = ...``."""
    if isinstance(node, ast.If):
        test = ast.unparse(node.test)
        return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or test.startswith("__name__ ==")
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)
    return False


def _not_removable(node: ast.stmt) -> bool:
    """Statements whose removal is no mutant worth running."""
    if isinstance(
        node,
        ast.Pass
        | ast.FunctionDef
        | ast.AsyncFunctionDef
        | ast.ClassDef
        | ast.Import
        | ast.ImportFrom
        | ast.Global
        | ast.Nonlocal
        | ast.Assert,
    ):
        return True
    if isinstance(node, ast.Expr) and (
        isinstance(node.value, ast.Constant) or _is_logging_call(node.value)
    ):
        return True  # docstrings, bare strings, ``...``, logging
    return isinstance(node, ast.AnnAssign) and node.value is None


class _Collector:
    def __init__(self, path: str, source: bytes) -> None:
        self.path = path
        self.source = source
        self.tree = ast.parse(source, filename=path)
        starts = [0]
        for line in source.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        self._line_starts = starts
        self.skip_lines = _pragma_lines(source)
        self.skipped: list[Mutant] = []  # candidates dropped by a pragma
        self.out: list[Mutant] = []

    # -- positions
    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self._line_starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        end_line = node.end_lineno  # type: ignore[attr-defined]
        end = self._line_starts[end_line - 1] + node.end_col_offset  # type: ignore[attr-defined]
        return start, end

    @staticmethod
    def _text(node: ast.AST) -> str:
        """The code of ``node`` for a description: normalised, without comments (so a
        pragma's TEXT never matches the description of a statement it sits in)."""
        return ast.unparse(node)

    def _add(self, node: ast.AST, description: str, replacement: str) -> None:
        line: int = node.lineno  # type: ignore[attr-defined]
        if line in self.skip_lines:
            only = self.skip_lines[line]
            skip = only is None or only in description
        else:
            skip = False
        start, end = self._span(node)
        mutant = Mutant(self.path, line, description, start, end, replacement.encode("utf-8"))
        (self.skipped if skip else self.out).append(mutant)

    def _add_expr(self, node: ast.expr, description: str, new: ast.expr) -> None:
        self._add(node, description, f"({ast.unparse(new)})")

    # -- walking
    def collect(self) -> list[Mutant]:
        self._block(self.tree.body, terminal=False)
        return self.out

    def _block(self, body: Sequence[ast.stmt], *, terminal: bool) -> None:
        """``terminal``: the function returns None right after this block."""
        for i, stmt in enumerate(body):
            if _skipped_block(stmt):
                continue
            last = terminal and i == len(body) - 1
            if not (_not_removable(stmt) or (last and _returns_none(stmt))):
                self._add(stmt, f"remove statement {_short(self._text(stmt))!r}", "pass")
            self._visit(stmt, terminal=last)

    def _visit(self, node: ast.AST, *, terminal: bool = False) -> None:
        if isinstance(node, ast.JoinedStr) or _is_logging_call(node):
            return  # messages and logging: not behaviour worth a test
        self._mutate(node)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "type_params"):
                continue
            if isinstance(node, ast.Assert) and name == "msg":
                continue
            if isinstance(value, list):
                if value and all(isinstance(v, ast.stmt) for v in value):
                    self._block(value, terminal=_terminal_field(node, name, terminal))
                elif name == "handlers":
                    for handler in value:
                        self._visit(handler, terminal=_terminal_field(node, name, terminal))
                else:
                    for item in value:
                        if isinstance(item, ast.AST):
                            self._visit(item)
            elif isinstance(value, ast.AST):
                self._visit(value)

    def _mutate(self, node: ast.AST) -> None:
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _CMP_SWAP.get(type(op))
                if swap is None:
                    continue
                ops = list(node.ops)
                ops[i] = swap()
                new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
                desc = f"replace {_SYMBOL[type(op)]!r} with {_SYMBOL[swap]!r}"
                self._add_expr(node, f"{desc} in {_short(self._text(node))!r}", new)
        elif isinstance(node, ast.BinOp):
            bswap = _BIN_SWAP.get(type(node.op))
            if bswap is not None and not (_is_string(node.left) or _is_string(node.right)):
                new_bin = ast.BinOp(left=node.left, op=bswap(), right=node.right)
                desc = f"replace {_SYMBOL[type(node.op)]!r} with {_SYMBOL[bswap]!r}"
                self._add_expr(node, f"{desc} in {_short(self._text(node))!r}", new_bin)
        elif isinstance(node, ast.AugAssign):
            aswap = _BIN_SWAP.get(type(node.op))
            if aswap is not None and not _is_string(node.value):
                new_aug = ast.AugAssign(target=node.target, op=aswap(), value=node.value)
                old, sym = _SYMBOL[type(node.op)], _SYMBOL[aswap]
                self._add(node, f"replace '{old}=' with '{sym}='", ast.unparse(new_aug))
        elif isinstance(node, ast.BoolOp):
            other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            desc = f"replace {_SYMBOL[type(node.op)]!r} with {_SYMBOL[type(other)]!r}"
            new_bool = ast.BoolOp(op=other, values=node.values)
            self._add_expr(node, f"{desc} in {_short(self._text(node))!r}", new_bool)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._add_expr(node, f"drop 'not' in {_short(self._text(node))!r}", node.operand)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                self._add(node, f"replace {value} with {not value}", repr(not value))
            elif isinstance(value, int | float):
                new_value = 1 - value if value in (0, 1) else value + 1
                self._add(node, f"replace {value!r} with {new_value!r}", repr(new_value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("min", "max") and node.args:
                other_name = "max" if node.func.id == "min" else "min"
                desc = f"replace {node.func.id}() with {other_name}()"
                self._add(node.func, f"{desc} in {_short(self._text(node))!r}", other_name)
        elif isinstance(node, ast.Return) and node.value is not None and not _returns_none(node):
            desc = f"return None instead of {_short(self._text(node.value))!r}"
            self._add(node.value, desc, "None")


def _returns_none(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Return) and (
        stmt.value is None or (isinstance(stmt.value, ast.Constant) and stmt.value.value is None)
    )


def _terminal_field(node: ast.AST, name: str, terminal: bool) -> bool:
    """Whether falling off the end of ``node.name`` returns None from the function, so
    removing a final ``return None`` there is an equivalent mutant."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return name == "body"
    if not terminal or isinstance(node, ast.For | ast.AsyncFor | ast.While):
        return False
    if isinstance(node, ast.Try | ast.TryStar):
        if node.finalbody:
            return name == "finalbody"
        return name != "body" or not node.orelse
    return True  # if/else, with, except handler, match case


def _pragma_lines(source: bytes) -> dict[int, str | None]:
    """Line -> the ``TEXT`` of its ``# mutate: skip[TEXT]`` pragma (None: skip them all)."""
    lines: dict[int, str | None] = {}
    tokens = tokenize.tokenize(io.BytesIO(source).readline)
    for tok in tokens:
        if tok.type == tokenize.COMMENT and (m := PRAGMA.search(tok.string)):
            lines[tok.start[0]] = m.group(1)
    return lines


def generate_mutants(path: str, source: bytes) -> tuple[list[Mutant], list[Mutant]]:
    """The valid, distinct mutants of ``source``, and those a pragma skipped."""
    collector = _Collector(path, source)
    original = ast.dump(collector.tree)
    seen = {original}
    mutants: list[Mutant] = []
    for m in collector.collect():
        try:
            dump = ast.dump(ast.parse(m.apply(source)))
        except SyntaxError:  # pragma: no cover - a bug in this tool, not in the target
            print(f"mutate: skipped an invalid mutant: {m.where()}", file=sys.stderr)
            continue
        if dump not in seen:
            seen.add(dump)
            mutants.append(m)
    mutants.sort(key=lambda m: (m.start, m.end))
    return mutants, collector.skipped


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    module: str  # path relative to the root
    tests: tuple[str, ...]


def _expand(root: Path, pattern: str) -> list[str]:
    """Shell-style glob relative to ``root`` (the part before ``::`` for test ids)."""
    path, sep, rest = pattern.partition("::")
    if not glob.has_magic(path):
        return [pattern]
    found = sorted(glob.glob(path, root_dir=root))
    return [f + sep + rest for f in found]


def parse_target(text: str, root: Path) -> list[Target]:
    """``MODULE:TEST[,TEST...]`` -> targets (one per module matched by a glob)."""
    module, sep, tests_text = text.partition(":")
    if not sep or not module or not tests_text:
        raise ValueError(f"bad target {text!r}: expected MODULE_PATH:TEST_PATH[,TEST_PATH...]")
    tests = [t for pattern in tests_text.split(",") if pattern for t in _expand(root, pattern)]
    if not tests:
        raise ValueError(f"bad target {text!r}: no test file matches {tests_text!r}")
    modules = _expand(root, module)
    if not modules:
        raise ValueError(f"bad target {text!r}: no module matches {module!r}")
    targets = []
    for m in modules:
        if Path(m).name == "__init__.py" and glob.has_magic(module):
            continue  # a glob over a package: its __init__ only re-exports
        if not (root / m).is_file():
            raise ValueError(f"bad target {text!r}: {m} is not a file under {root}")
        targets.append(Target(m, tuple(tests)))
    return targets


def _module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    mutant: Mutant
    outcome: str  # killed, survived, timeout, error
    seconds: float


@dataclass
class _Runner:
    timeout: float
    stop: threading.Event = field(default_factory=threading.Event)
    failed: bool = False
    _procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pytest(self, copy: Path, tests: Sequence[str], timeout: float) -> tuple[str, bytes]:
        """Run the tests in ``copy``: (outcome, output). Outcome: killed = they failed."""
        if self.stop.is_set():
            return ERROR, b"interrupted"
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        proc = subprocess.Popen(
            cmd,
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._procs[proc.pid] = proc
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate()
            return TIMEOUT, out
        finally:
            with self._lock:
                self._procs.pop(proc.pid, None)
        if proc.returncode == 0:
            return SURVIVED, out
        if proc.returncode == 1:  # tests failed
            return KILLED, out
        return ERROR, out  # collection/import error, interrupted, killed ...

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _worker(
    runner: _Runner,
    copy: Path,
    originals: dict[str, bytes],
    tests_of: dict[str, tuple[str, ...]],
    todo: queue.Queue[Mutant],
    results: list[Result],
    progress: _Progress,
) -> None:
    while not runner.stop.is_set():
        try:
            mutant = todo.get_nowait()
        except queue.Empty:
            return
        target = copy / mutant.path
        original = originals[mutant.path]
        t0 = time.monotonic()
        try:
            target.write_bytes(mutant.apply(original))
            outcome, out = runner.pytest(copy, tests_of[mutant.path], runner.timeout)
        finally:
            target.write_bytes(original)
        if runner.stop.is_set():
            return  # interrupted: the outcome is meaningless
        result = Result(mutant, outcome, time.monotonic() - t0)
        results.append(result)
        progress.report(result, out)


def _safe_worker(runner: _Runner, *args: Any) -> None:
    """:func:`_worker`, but a failure stops the whole run with one line, not a traceback."""
    try:
        _worker(runner, *args)
    except Exception as exc:  # reported, and the run stops
        if not runner.stop.is_set():
            print(f"\nmutate: worker failed: {exc!r}", file=sys.stderr, flush=True)
            runner.failed = True
            runner.stop.set()


@dataclass
class _Progress:
    total: int
    verbose: bool
    done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, result: Result, out: bytes) -> None:
        with self._lock:
            self.done += 1
            if self.verbose:
                print(
                    f"[{self.done:>4}/{self.total}] {result.outcome:<8} {result.seconds:5.1f}s"
                    f"  {result.mutant.where()}",
                    file=sys.stderr,
                    flush=True,
                )
                if result.outcome == ERROR:
                    tail = out.decode("utf-8", "replace").strip().splitlines()[-5:]
                    print("\n".join("           | " + line for line in tail), file=sys.stderr)
            else:
                mark = {KILLED: ".", SURVIVED: "S", TIMEOUT: "T", ERROR: "E"}[result.outcome]
                end = "\n" if self.done % 60 == 0 or self.done == self.total else ""
                print(mark, end=end, file=sys.stderr, flush=True)


def _copy_tree(root: Path, base: Path, workers: int) -> list[Path]:
    first = base / "w0"
    shutil.copytree(root, first, ignore=COPY_IGNORE, symlinks=True)
    copies = [first]
    for i in range(1, workers):
        dest = base / f"w{i}"
        shutil.copytree(first, dest, symlinks=True)
        copies.append(dest)
    return copies


def _check_import(copy: Path, module: str) -> str | None:
    """An error line if ``module`` is not imported from ``copy`` (None = fine or unknown)."""
    name = _module_name(module)
    code = (
        "import importlib.util, sys\n"
        "try:\n"
        f"    spec = importlib.util.find_spec({name!r})\n"
        "except Exception:\n"
        "    spec = None\n"
        "print(spec.origin if spec and spec.origin else '')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    origin = proc.stdout.strip()
    if not origin:
        return None  # not importable by that name (a script?): the tests know best
    if Path(origin).resolve() != (copy / module).resolve():
        return f"{module}: imported as {name} from {origin}, not from the copy"
    return None


def _summary(module: str, results: list[Result], skipped: int) -> tuple[str, float]:
    n = len(results)
    killed = sum(r.outcome != SURVIVED for r in results)
    timeouts = sum(r.outcome == TIMEOUT for r in results)
    errors = sum(r.outcome == ERROR for r in results)
    score = 100.0 * killed / n if n else 100.0
    parts = [f"{timeouts} timeout"] if timeouts else []
    parts += [f"{errors} error"] if errors else []
    extra = ", ".join(parts)
    line = (
        f"{module}: {n} mutants, {killed} killed"
        + (f" ({extra})" if extra else "")
        + f", {n - killed} survived, score {score:.1f}%"
        + (f" ({skipped} skipped by pragma)" if skipped else "")
    )
    return line, score


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    return argparse.ArgumentParser(
        prog="python -m tools.mutate",
        description=doc.split("\n\n", 1)[1] if "\n\n" in doc else doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Output: one summary line per module -- mutants, killed (timeouts and errors\n"
            "count as killed), survived, score = killed/mutants -- then each survivor as\n"
            "FILE:LINE: DESCRIPTION, a change no test noticed: write the test that fails on\n"
            "it (or, if the mutant cannot change behaviour, add a pragma with the reason).\n"
            "See docs/testing.md."
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    parser.add_argument(
        "targets", nargs="+", metavar="TARGET", help="MODULE_PATH:TEST_PATH[,TEST_PATH...]"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="mutants run in parallel, each worker in its own copy (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="per-mutant limit (default: 10 s + 4 x the unmutated run)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="repository root that paths are relative to (default: cwd)",
    )
    parser.add_argument("--list", action="store_true", help="only list the mutants, run nothing")
    parser.add_argument(
        "--fail-under",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 if a module's score is below PCT",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="one line per mutant instead of one character"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.jobs < 1:
        parser.error("-j must be at least 1")
    try:
        targets = [t for text in args.targets for t in parse_target(text, root)]
    except ValueError as exc:
        parser.error(str(exc))

    originals = {t.module: (root / t.module).read_bytes() for t in targets}
    mutants_of: dict[str, list[Mutant]] = {}
    skipped_of: dict[str, int] = {}
    for t in targets:
        mutants, skipped = generate_mutants(t.module, originals[t.module])
        mutants_of[t.module], skipped_of[t.module] = mutants, len(skipped)
        if args.list:
            try:
                for m in mutants:
                    print(m.where())
                for m in skipped if args.verbose else ():
                    print(f"{m.where()}  [skipped by pragma]")
                print(f"{t.module}: {len(mutants)} mutants ({len(skipped)} skipped by pragma)")
            except BrokenPipeError:  # | head
                sys.stderr.close()
                return 0
    if args.list:
        return 0
    return _run(args, root, targets, originals, mutants_of, skipped_of)


def _run(
    args: argparse.Namespace,
    root: Path,
    targets: list[Target],
    originals: dict[str, bytes],
    mutants_of: dict[str, list[Mutant]],
    skipped_of: dict[str, int],
) -> int:
    started = time.monotonic()
    total = sum(len(m) for m in mutants_of.values())
    workers = max(1, min(args.jobs, total))
    runner = _Runner(timeout=args.timeout or 0.0)
    results: list[Result] = []
    base = Path(tempfile.mkdtemp(prefix="mutate-"))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    threads: list[threading.Thread] = []
    try:
        print(f"mutate: copying {root} to {base} ({workers} worker(s))", file=sys.stderr)
        copies = _copy_tree(root, base, workers)
        status = 0
        baseline = 0.0
        runnable: list[Target] = []
        for t in targets:  # the unmutated tests must pass in the copy, importing the copy
            problem = _check_import(copies[0], t.module)
            t0 = time.monotonic()
            outcome, out = runner.pytest(copies[0], t.tests, timeout=600.0)
            baseline = max(baseline, time.monotonic() - t0)
            if problem is None and outcome != SURVIVED:
                tail = "\n".join(out.decode("utf-8", "replace").strip().splitlines()[-15:])
                problem = f"{t.module}: the tests fail unmutated ({outcome}):\n{tail}"
            if problem is not None:
                print(f"mutate: skipping {problem}", file=sys.stderr)
                status = 2
            else:
                runnable.append(t)
        runner.timeout = args.timeout or 10.0 + 4 * baseline
        todo: queue.Queue[Mutant] = queue.Queue()
        for t in runnable:
            for m in mutants_of[t.module]:
                todo.put(m)
        count = todo.qsize()
        print(
            f"mutate: {count} mutants in {len(runnable)} module(s), unmutated run"
            f" {baseline:.1f}s, timeout {runner.timeout:.0f}s per mutant",
            file=sys.stderr,
        )
        progress = _Progress(count, args.verbose)
        tests_of = {t.module: t.tests for t in runnable}
        for copy in copies:
            th = threading.Thread(
                target=_safe_worker,
                args=(runner, copy, originals, tests_of, todo, results, progress),
                daemon=True,
            )
            th.start()
            threads.append(th)
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(0.2)
            if runner.failed:
                runner.kill_all()
        if runner.failed:
            return 2
    except KeyboardInterrupt:
        runner.stop.set()
        runner.kill_all()
        for th in threads:
            th.join(30)  # each restores its copy's file in a finally
        print("\nmutate: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(base, ignore_errors=True)

    print()
    for t in runnable:
        mine = sorted(
            (r for r in results if r.mutant.path == t.module),
            key=lambda r: (r.mutant.start, r.mutant.end),
        )
        line, score = _summary(t.module, mine, skipped_of[t.module])
        print(f"{line}  [tests: {', '.join(t.tests)}]")
        survivors = [r.mutant for r in mine if r.outcome == SURVIVED]
        if survivors:
            print("  survivors:")
            for m in survivors:
                print(f"    {m.where()}")
        if args.fail_under is not None and score < args.fail_under and status == 0:
            status = 1
    print(f"mutate: done in {time.monotonic() - started:.0f}s")
    return status


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
