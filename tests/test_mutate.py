"""tools/mutate.py, the on-demand mutation tester: mutant generation (pure) and one small
run over a toy project (it spawns pytest, so it is marked e2e)."""

from __future__ import annotations

import ast
import tempfile
import textwrap
from pathlib import Path

import pytest

from tools.mutate import Target, generate_mutants, main, parse_target


def mutants_of(code: str) -> list[str]:
    source = textwrap.dedent(code).encode()
    mutants, _ = generate_mutants("m.py", source)
    for m in mutants:  # every mutant is valid Python and really differs
        assert ast.dump(ast.parse(m.apply(source))) != ast.dump(ast.parse(source))
    return [f"{m.line}: {m.description}" for m in mutants]


def test_operators() -> None:
    found = mutants_of(
        """
        def f(a, b, xs):
            if a < b and a is not None or not xs:
                return min(a + b, a * b)
            return a in xs
        """
    )
    assert found == [
        "3: remove statement 'if a < b and a is not None or not xs: return min(a + b, a...'",
        "3: replace '<' with '<=' in 'a < b'",
        "3: replace 'and' with 'or' in 'a < b and a is not None'",
        "3: replace 'or' with 'and' in 'a < b and a is not None or not xs'",
        "3: replace 'is not' with 'is' in 'a is not None'",
        "3: drop 'not' in 'not xs'",
        "4: remove statement 'return min(a + b, a * b)'",
        "4: replace min() with max() in 'min(a + b, a * b)'",
        "4: return None instead of 'min(a + b, a * b)'",
        "4: replace '+' with '-' in 'a + b'",
        "4: replace '*' with '/' in 'a * b'",
        "5: remove statement 'return a in xs'",
        "5: return None instead of 'a in xs'",
        "5: replace 'in' with 'not in' in 'a in xs'",
    ]


def test_constants_and_augmented_assignment() -> None:
    found = mutants_of(
        """
        x = 0
        y = 1
        z = 2.5
        flag = True
        x += 3
        """
    )
    assert "2: replace 0 with 1" in found
    assert "3: replace 1 with 0" in found
    assert "4: replace 2.5 with 3.5" in found
    assert "5: replace True with False" in found
    assert "6: replace '+=' with '-='" in found
    assert "6: replace 3 with 4" in found


def test_what_is_never_mutated() -> None:
    found = mutants_of(
        '''
        """Module docstring."""
        from typing import TYPE_CHECKING
        import logging
        __all__ = ["f"]
        if TYPE_CHECKING:
            N = 1
        log = logging.getLogger(__name__)

        def f(a: int = 5) -> None:
            """Docstring."""
            log.info("value %d", a + 1)
            print(f"{a + 1:.2f}", "x" + "y")
            if a:
                return None
        '''
    )
    assert found == [
        "8: remove statement 'log = logging.getLogger(__name__)'",
        "10: replace 5 with 6",  # a default value is behaviour
        "13: remove statement \"print(f'{a + 1:.2f}', 'x' + 'y')\"",
        "14: remove statement 'if a: return None'",
    ]  # the final `return None` is not removed: falling off the end is the same


def test_return_none_that_is_not_last_can_be_removed() -> None:
    found = mutants_of(
        """
        def f(a):
            for x in a:
                return None
            return 1
        """
    )
    assert "4: remove statement 'return None'" in found


def test_pragma_skips_a_line_or_only_matching_mutants() -> None:
    source = textwrap.dedent(
        """
        a = 0  # mutate: skip - always overwritten
        if a < 1 and a > 2:  # mutate: skip[with '<='] - equal cannot happen
            pass
        """
    ).encode()
    mutants, skipped = generate_mutants("m.py", source)
    assert [m.description for m in skipped] == [
        "remove statement 'a = 0'",
        "replace 0 with 1",
        "replace '<' with '<=' in 'a < 1'",
    ]
    assert [m.line for m in mutants] == [3] * 5  # the rest of line 3 is still mutated
    assert "replace '>' with '>=' in 'a > 2'" in [m.description for m in mutants]


def test_parse_target_expands_globs(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for name in ("__init__.py", "a.py", "b.py"):
        (tmp_path / "pkg" / name).write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    (tmp_path / "tests" / "test_y.py").write_text("")
    tests = ("tests/test_x.py", "tests/test_y.py")
    assert parse_target("pkg/*.py:tests/test_*.py", tmp_path) == [
        Target("pkg/a.py", tests),
        Target("pkg/b.py", tests),
    ]
    assert parse_target("pkg/a.py:tests/test_x.py::test_one,tests/test_y.py", tmp_path) == [
        Target("pkg/a.py", ("tests/test_x.py::test_one", "tests/test_y.py"))
    ]
    for bad in ("pkg/a.py", "pkg/a.py:", "pkg/nope.py:tests/test_x.py", "pkg/a.py:none_*.py"):
        with pytest.raises(ValueError, match="bad target"):
            parse_target(bad, tmp_path)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_run_reports_survivors_and_leaves_the_tree_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "proj"
    (root / "toy").mkdir(parents=True)
    (root / "toy" / "__init__.py").write_text("")
    module = root / "toy" / "calc.py"
    module.write_text("def clamp(x, lo):\n    if x < lo:\n        return lo\n    return x\n")
    (root / "test_calc.py").write_text(
        "from toy.calc import clamp\n\n"
        "def test_clamp():\n    assert clamp(5, 0) == 5\n    assert clamp(-1, 0) == 0\n"
    )
    original = module.read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    status = main(["--root", str(root), "--fail-under", "100", "toy/calc.py:test_calc.py"])

    out = capsys.readouterr().out
    assert status == 1  # one survivor: below 100 %
    assert "toy/calc.py: 6 mutants, 5 killed, 1 survived, score 83.3%" in out
    assert "toy/calc.py:2: replace '<' with '<=' in 'x < lo'" in out  # clamp(0, 0) untested
    assert module.read_bytes() == original
    assert list(scratch.iterdir()) == []  # the copies are gone


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_run_refuses_a_failing_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, scratch = tmp_path / "proj", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    (root / "m.py").write_text("X = 1\n")
    (root / "test_m.py").write_text("from m import X\n\ndef test_x():\n    assert X == 2\n")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["--root", str(root), "m.py:test_m.py"]) == 2
    assert "the tests fail unmutated" in capsys.readouterr().err
