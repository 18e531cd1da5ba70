"""threadhost.adapter: declarations, load-time checks, argument binding, results, fingerprints."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from examples.mylib_adapter import Mylib
from tests.adapters_for_tests import (
    BROKEN,
    Box,
    Color,
    Everything,
    Level,
    PointDC,
    PointModel,
)
from threadhost.adapter import (
    Adapter,
    AdapterSpec,
    CallSpec,
    Param,
    fast,
    inspect_adapter,
    load_adapter,
    slow,
)
from threadhost.errors import AdapterError, BadArgumentsError, ProtocolError, UnknownCallError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mylib_spec() -> AdapterSpec:
    return load_adapter("examples.mylib_adapter")


@pytest.fixture(scope="module")
def everything() -> AdapterSpec:
    return inspect_adapter(Everything)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------- declarations


def test_mylib_adapter_declares_the_seed_calls(mylib_spec: AdapterSpec) -> None:
    assert mylib_spec.cls is Mylib
    assert mylib_spec.module == "examples.mylib_adapter"
    assert mylib_spec.qualname == "Mylib"
    assert mylib_spec.doc == "mylib hosted by threadhost."
    assert mylib_spec.default_policy == "idle=10s | stale=5m"
    assert mylib_spec.replicable is True
    assert list(mylib_spec.calls) == ["read_config", "calc"]
    read_config, calc = mylib_spec.calls.values()
    assert (read_config.kind, read_config.startup, read_config.params) == ("slow", True, ())
    assert read_config.returns is type(None)
    assert read_config.doc == "Re-read the configuration (up to 30 s)."
    assert calc.kind == "fast" and calc.doc == "Return x + offset."
    assert calc.params == (Param("x", int, "positional_or_keyword", False, None),)
    assert calc.returns is int
    assert [c.name for c in mylib_spec.fast_calls] == ["calc"]
    assert [c.name for c in mylib_spec.slow_calls] == ["read_config"]
    assert [c.name for c in mylib_spec.startup_calls] == ["read_config"]


def test_decorators_bare_and_parametrised(everything: AdapterSpec) -> None:
    calls = everything.calls
    assert calls["echo_int"].kind == "fast" and calls["echo_int"].timeout is None
    assert calls["echo_float"].timeout == 2.5
    assert calls["load"].startup is True and calls["load"].deadline == 40.0
    assert calls["refresh"].policy == "every=1h" and calls["refresh"].startup is False
    assert calls["refresh"].returns is int
    assert [c.name for c in everything.startup_calls] == ["load"]
    assert [c.name for c in everything.slow_calls] == ["load", "refresh"]
    assert list(calls)[:3] == ["load", "refresh", "echo_int"]  # definition order


def test_decorators_return_the_function_unchanged() -> None:
    def calc(self: Any, x: int) -> int:
        return x + 1

    def name(self: Any) -> str:
        return "n"

    assert fast(calc) is calc
    assert fast(timeout=1.0)(name) is name
    adapter = Everything()
    assert adapter.echo_int(3) == 3  # still an ordinary method
    assert Everything.scale.__name__ == "scale"


def test_fast_rejects_non_functions() -> None:
    with pytest.raises(AdapterError, match="must decorate a method"):
        fast(42)  # type: ignore[call-overload]


def test_inherited_calls_and_undecorated_overrides() -> None:
    class Base(Adapter):
        @fast
        def calc(self, x: int) -> int:
            return x

        @fast
        def other(self) -> int:
            return 1

    class Child(Base):
        def other(self) -> int:  # no decorator: no longer a call
            return 2

        @slow
        def refresh(self) -> None:
            pass

    spec = inspect_adapter(Child)
    assert list(spec.calls) == ["calc", "refresh"]
    assert spec.doc == ""  # not inherited from Adapter


def test_not_an_adapter() -> None:
    with pytest.raises(AdapterError, match=re.escape("is not a threadhost.Adapter subclass")):
        inspect_adapter(int)  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match=re.escape("is not a threadhost.Adapter subclass")):
        inspect_adapter(Adapter)


@pytest.mark.parametrize(("case", "factory", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_declaration_mistakes_are_refused_naming_class_and_method(
    case: str, factory: Any, expected: str
) -> None:
    with pytest.raises(AdapterError) as info:
        inspect_adapter(factory())
    assert expected in str(info.value)
    assert str(info.value).startswith("Mylib")


MYPY_SNIPPET = """\
from threadhost.adapter import Adapter, fast, slow


class Lib(Adapter):
    @fast
    def calc(self, x: int) -> int:
        return x + 1

    @fast(timeout=1.0)
    def greet(self, name: str, *, loud: bool = False) -> str:
        return name

    @slow(startup=True)
    def load(self) -> None:
        pass

    @slow  # E: Argument 1 to "slow" has incompatible type
    def bad_slow(self, path: str) -> None:
        pass


lib = Lib()
ok: int = lib.calc(1)
fine: str = lib.greet("a", loud=True)
lib.load()
lib.calc("5")  # E: Argument 1 to "calc" of "Lib" has incompatible type "str"
lib.greet(1)  # E: Argument 1 to "greet" of "Lib" has incompatible type "int"
bad: str = lib.calc(2)  # E: Incompatible types in assignment
lib.calc(1, 2)  # E: Too many arguments for "calc" of "Lib"
reveal_type(lib.calc)  # N: def (x: int) -> int
"""


def test_mypy_sees_the_real_signatures(tmp_path: Path) -> None:
    """``# E: text`` marks a line mypy must flag (text in its message); others stay clean."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(MYPY_SNIPPET)
    env = child_env()
    env["MYPYPATH"] = str(ROOT)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--follow-imports=silent",  # judge the snippet, not the rest of the tree
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(snippet),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    reported: dict[int, list[str]] = {}
    for line in out.splitlines():
        match = re.match(r".*snippet\.py:(\d+): (error|note): (.*)", line)
        if match:
            reported.setdefault(int(match.group(1)), []).append(match.group(3))
    expected_lines = set()
    for number, text in enumerate(MYPY_SNIPPET.splitlines(), start=1):
        marker = re.search(r"# ([EN]): (.*)", text)
        if marker is None:
            continue
        expected_lines.add(number)
        kind, words = marker.groups()
        messages = reported.get(number, [])
        if kind == "N":  # a revealed type; mypy may or may not spell builtins.int
            assert any(
                m.replace("builtins.", "") == f'Revealed type is "{words}"' for m in messages
            ), out
        else:
            assert any(words in m for m in messages), out
    assert set(reported) == expected_lines, out


# --------------------------------------------------------------------------- load_adapter


@pytest.fixture
def adapter_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "th_two_adapters.py").write_text(
        textwrap.dedent(
            """
            from threadhost.adapter import Adapter, fast
            class First(Adapter):
                @fast
                def a(self) -> int:
                    return 1
            class Second(Adapter):
                @fast
                def b(self) -> int:
                    return 2
            class _Base(Adapter):
                pass
            """
        )
    )
    (tmp_path / "th_imports_only.py").write_text(
        "from examples.mylib_adapter import Mylib\nfrom threadhost.adapter import Adapter\n"
    )
    (tmp_path / "th_explodes.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "th_bad_decl.py").write_text(
        textwrap.dedent(
            """
            from threadhost.adapter import Adapter, fast, slow
            class Mylib(Adapter):
                @fast
                @slow
                def calc(self) -> int:
                    return 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("th_two_adapters", "th_imports_only", "th_explodes", "th_bad_decl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_load_adapter_by_module_and_by_class(mylib_spec: AdapterSpec) -> None:
    assert load_adapter("examples.mylib_adapter:Mylib").cls is Mylib
    assert mylib_spec.target == "examples.mylib_adapter:Mylib"
    assert load_adapter("tests.adapters_for_tests:Everything").cls is Everything


@pytest.mark.usefixtures("adapter_modules")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "no_such_module_xyz",
            "cannot import adapter module 'no_such_module_xyz': "
            "No module named 'no_such_module_xyz'",
        ),
        ("json", "module 'json' defines no threadhost.Adapter subclass"),
        ("th_imports_only", "module 'th_imports_only' defines no threadhost.Adapter subclass"),
        (
            "th_two_adapters",
            "module 'th_two_adapters' defines several threadhost.Adapter subclasses "
            "(First, Second); name one, e.g. 'th_two_adapters:First'",
        ),
        ("th_explodes", "cannot import adapter module 'th_explodes': RuntimeError: boom"),
        ("th_bad_decl", "Mylib.calc is declared both fast and slow"),
        ("examples.mylib_adapter:Nope", "module 'examples.mylib_adapter' has no class 'Nope'"),
        ("examples.mylib:Config", "'examples.mylib:Config' is not a threadhost.Adapter subclass"),
        ("th_imports_only:Adapter", "is not a threadhost.Adapter subclass"),
        ("", "invalid adapter target ''"),
        (":Mylib", "invalid adapter target ':Mylib'"),
        ("examples.mylib_adapter:", "invalid adapter target"),
        ("a:b:c", "invalid adapter target 'a:b:c'"),
    ],
)
def test_load_adapter_errors(target: str, message: str) -> None:
    with pytest.raises(AdapterError) as info:
        load_adapter(target)
    assert message in str(info.value)


@pytest.mark.usefixtures("adapter_modules")
def test_load_adapter_picks_one_of_several_by_name() -> None:
    assert list(load_adapter("th_two_adapters:Second").calls) == ["b"]


# --------------------------------------------------------------------------- client_call


def test_client_call_returns_fast_calls(mylib_spec: AdapterSpec) -> None:
    assert mylib_spec.client_call("calc") is mylib_spec.calls["calc"]


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("setup", "setup and teardown are run by the host"),
        ("teardown", "setup and teardown are run by the host"),
        ("read_config", "it is a slow call"),
        ("_x", ""),
        ("__class__", ""),
        ("__init__", ""),
        ("instantiate", ""),
        ("foo", ""),
        ("", ""),
    ],
)
def test_client_call_refusals(mylib_spec: AdapterSpec, name: str, extra: str) -> None:
    with pytest.raises(UnknownCallError) as info:
        mylib_spec.client_call(name)
    assert str(info.value).startswith(f"Mylib has no client-callable call {name!r}")
    assert extra in str(info.value)


@pytest.mark.parametrize("name", [None, 5, b"calc", ["calc"]])
def test_client_call_refuses_non_strings(mylib_spec: AdapterSpec, name: Any) -> None:
    with pytest.raises(UnknownCallError, match="Mylib has no client-callable call"):
        mylib_spec.client_call(name)


def test_instantiate(mylib_spec: AdapterSpec) -> None:
    assert isinstance(mylib_spec.instantiate(), Mylib)


# --------------------------------------------------------------------------- bind


def test_bind_calc_accepts_int_positional_and_keyword(mylib_spec: AdapterSpec) -> None:
    calc = mylib_spec.client_call("calc")
    args = [5]
    bound = calc.bind(args, {})
    assert bound == ([5], {})
    assert bound[0] is not args
    assert calc.bind([], {"x": 5}) == ([], {"x": 5})
    assert calc.bind((7,), {}) == ([7], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (["5"], {}, "Mylib.calc: argument 'x': Input should be a valid integer, got str '5'"),
        ([True], {}, "Mylib.calc: argument 'x': Input should be a valid integer, got bool True"),
        ([5.0], {}, "Mylib.calc: argument 'x': Input should be a valid integer, got float 5.0"),
        ([None], {}, "Mylib.calc: argument 'x'"),
        ([[5]], {}, "Mylib.calc: argument 'x'"),
        ([], {"x": "5"}, "Mylib.calc: argument 'x'"),
        ([5, 6], {}, "Mylib.calc() takes 1 positional argument but 2 were given"),
        ([], {}, "Mylib.calc() missing required argument: 'x'"),
        ([], {"y": 5}, "Mylib.calc() got an unexpected keyword argument 'y'"),
        ([5], {"x": 5}, "Mylib.calc() got multiple values for argument 'x'"),
        ([], {1: 5}, "Mylib.calc() got an unexpected keyword argument 1"),
    ],
)
def test_bind_calc_refusals(
    mylib_spec: AdapterSpec, args: list[Any], kwargs: dict[Any, Any], message: str
) -> None:
    with pytest.raises(BadArgumentsError) as info:
        mylib_spec.client_call("calc").bind(args, kwargs)
    assert message in str(info.value)


def test_bind_refuses_non_list_arguments(mylib_spec: AdapterSpec) -> None:
    with pytest.raises(BadArgumentsError, match="arguments must be a list"):
        mylib_spec.client_call("calc").bind("5", {})  # type: ignore[arg-type]
    with pytest.raises(BadArgumentsError, match="arguments must be a list"):
        mylib_spec.client_call("calc").bind([5], [("x", 1)])  # type: ignore[arg-type]


GOOD_BINDINGS: list[tuple[str, list[Any], dict[str, Any], list[Any], dict[str, Any]]] = [
    ("echo_float", [5], {}, [5.0], {}),
    ("echo_float", [2.5], {}, [2.5], {}),
    ("echo_str", ["x"], {}, ["x"], {}),
    ("echo_bytes", [b"\x00\xff"], {}, [b"\x00\xff"], {}),
    ("echo_bool", [False], {}, [False], {}),
    ("echo_list", [[1, 2]], {}, [[1, 2]], {}),
    ("echo_dict", [{"a": [1, 2.5]}], {}, [{"a": [1.0, 2.5]}], {}),
    ("echo_intkeys", [{1: "a"}], {}, [{1: "a"}], {}),
    ("echo_tuple", [[1, "a", b"b"]], {}, [(1, "a", b"b")], {}),
    ("echo_vartuple", [[1, 2, 3]], {}, [(1, 2, 3)], {}),
    ("echo_optional", [], {}, [], {}),
    ("echo_optional", [None], {}, [None], {}),
    ("echo_optional", [], {"x": 3}, [], {"x": 3}),
    ("echo_union", ["5"], {}, ["5"], {}),
    ("echo_union", [5], {}, [5], {}),
    ("echo_literal", ["safe"], {}, ["safe"], {}),
    ("echo_literal", [3], {}, [3], {}),
    ("echo_enum", ["green"], {}, [Color.GREEN], {}),
    ("echo_enum", [Color.RED], {}, [Color.RED], {}),
    ("echo_intenum", [2], {}, [Level.HIGH], {}),
    ("echo_model", [{"x": 1, "span": [1, 2]}], {}, [PointModel(x=1, span=(1, 2))], {}),
    (
        "echo_dataclass",
        [{"x": 1, "color": "green", "tags": ["a"]}],
        {},
        [PointDC(1, Color.GREEN, ("a",))],
        {},
    ),
    (
        "echo_box",
        [{"corner": {"x": 1}, "points": [{"x": 2}], "model": {"x": 3}}],
        {},
        [Box(PointDC(1), [PointDC(2)], PointModel(x=3))],
        {},
    ),
    ("echo_annotated", [0], {}, [0], {}),
    ("echo_newtype", [7], {}, [7], {}),
    ("scale", [1], {}, [1], {}),
    ("scale", [1, 2], {"factor": 2}, [1, 2], {"factor": 2.0}),
    ("scale", [1], {"y": 2}, [1], {"y": 2}),
]


@pytest.mark.parametrize(
    ("call", "args", "kwargs", "want_args", "want_kwargs"),
    GOOD_BINDINGS,
    ids=[f"{b[0]}-{i}" for i, b in enumerate(GOOD_BINDINGS)],
)
def test_bind_converts_wire_values(
    everything: AdapterSpec,
    call: str,
    args: list[Any],
    kwargs: dict[str, Any],
    want_args: list[Any],
    want_kwargs: dict[str, Any],
) -> None:
    got_args, got_kwargs = everything.client_call(call).bind(args, kwargs)
    assert (got_args, got_kwargs) == (want_args, want_kwargs)
    for got, want in zip(got_args, want_args, strict=True):
        assert type(got) is type(want)


BAD_BINDINGS: list[tuple[str, list[Any], dict[str, Any], str]] = [
    ("echo_float", [True], {}, "argument 'x'"),
    ("echo_float", ["1.5"], {}, "argument 'x'"),
    ("echo_str", [b"x"], {}, "argument 's'"),
    ("echo_bytes", ["x"], {}, "argument 'b'"),
    ("echo_bool", [1], {}, "argument 'b'"),
    ("echo_list", [[1, "2"]], {}, "argument 'items': at 1:"),
    ("echo_list", [[True]], {}, "argument 'items'"),
    ("echo_dict", [{"a": [True]}], {}, "argument 'd'"),
    ("echo_intkeys", [{"1": "a"}], {}, "argument 'd'"),
    ("echo_tuple", [[1, "a"]], {}, "argument 't'"),
    ("echo_tuple", [["1", "a", b"b"]], {}, "argument 't'"),
    ("echo_union", [1.5], {}, "argument 'x'"),
    ("echo_union", [True], {}, "argument 'x'"),
    ("echo_literal", ["slow"], {}, "argument 'mode'"),
    ("echo_literal", [True], {}, "argument 'mode'"),
    ("echo_literal", ["3"], {}, "argument 'mode'"),
    ("echo_enum", ["blue"], {}, "argument 'c'"),
    ("echo_enum", ["RED"], {}, "argument 'c'"),
    ("echo_intenum", [True], {}, "argument 'level'"),
    ("echo_intenum", ["1"], {}, "argument 'level'"),
    ("echo_dataclass", [{"x": "1"}], {}, "argument 'p': at x:"),
    ("echo_dataclass", [{"x": True}], {}, "argument 'p'"),
    ("echo_dataclass", [{"color": "red"}], {}, "argument 'p'"),
    ("echo_dataclass", [[1]], {}, "argument 'p'"),
    ("echo_box", [{"corner": {"x": 1}, "points": [{"x": 1.5}]}], {}, "argument 'box': at points"),
    ("echo_model", [{"y": 1}], {}, "argument 'p'"),
    ("echo_annotated", [-1], {}, "argument 'n'"),
    ("echo_newtype", ["7"], {}, "argument 'user'"),
    ("scale", [], {"x": 1}, "got an unexpected keyword argument 'x'"),
    ("scale", [1, 2, 3.0], {}, "takes 2 positional arguments but 3 were given"),
    ("scale", [1], {"factor": "2"}, "argument 'factor'"),
    ("nothing", [1], {}, "takes 0 positional arguments but 1 was given"),
]


@pytest.mark.parametrize(
    ("call", "args", "kwargs", "message"),
    BAD_BINDINGS,
    ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_BINDINGS)],
)
def test_bind_refuses_wrong_wire_values(
    everything: AdapterSpec, call: str, args: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadArgumentsError) as info:
        everything.client_call(call).bind(args, kwargs)
    assert str(info.value).startswith(f"Everything.{call}")
    assert message in str(info.value)


def test_bind_is_fast_for_simple_signatures(mylib_spec: AdapterSpec) -> None:
    # A loose guard (measured ~1 us per call on the dev machine); see docs/adapters.md.
    calc = mylib_spec.client_call("calc")
    args: list[Any] = [5]
    kwargs: dict[str, Any] = {}
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        calc.bind(args, kwargs)
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 20e-6, f"bind took {per_call * 1e6:.1f} us per call"


# --------------------------------------------------------------------------- results


ROUND_TRIPS: list[tuple[str, list[Any], Any]] = [
    ("echo_int", [5], 5),
    ("echo_float", [2.5], 2.5),
    ("echo_str", ["héllo"], "héllo"),
    ("echo_bytes", [b"\x00\xff"], b"\x00\xff"),
    ("echo_bool", [True], True),
    ("nothing", [], None),
    ("echo_list", [[1, 2]], [1, 2]),
    ("echo_dict", [{"a": [1.5]}], {"a": [1.5]}),
    ("echo_intkeys", [{1: "a", 2: "b"}], {1: "a", 2: "b"}),
    ("echo_tuple", [(1, "a", b"b")], [1, "a", b"b"]),
    ("echo_vartuple", [()], []),
    ("echo_optional", [None], None),
    ("echo_optional", [4], 4),
    ("echo_union", ["x"], "x"),
    ("echo_literal", ["fast"], "fast"),
    ("echo_enum", [Color.GREEN], "green"),
    ("echo_intenum", [Level.HIGH], 2),
    (
        "echo_model",
        [PointModel(x=1, tag=b"\x01", color=Color.GREEN, span=(3, 4))],
        {"x": 1, "y": 0, "tag": b"\x01", "color": "green", "span": [3, 4]},
    ),
    (
        "echo_dataclass",
        [PointDC(1, Color.GREEN, ("a", "b"))],
        {"x": 1, "color": "green", "tags": ["a", "b"]},
    ),
    (
        "echo_box",
        [Box(PointDC(1), [PointDC(2)], PointModel(x=3), b"\xfe")],
        {
            "corner": {"x": 1, "color": "red", "tags": []},
            "points": [{"x": 2, "color": "red", "tags": []}],
            "model": {"x": 3, "y": 0, "tag": b"", "color": "red", "span": [0, 0]},
            "data": b"\xfe",
        },
    ),
    ("scale", [1, 2], 3.0),
]


@pytest.mark.parametrize(
    ("call", "args", "wire"), ROUND_TRIPS, ids=[f"{r[0]}-{i}" for i, r in enumerate(ROUND_TRIPS)]
)
def test_results_round_trip_through_msgpack(
    everything: AdapterSpec, call: str, args: list[Any], wire: Any
) -> None:
    spec = everything.client_call(call)
    value = getattr(Everything(), call)(*args)
    dumped = spec.dump_result(value)
    assert dumped == wire
    assert _only_wire_types(dumped)
    packed = msgpack.packb(dumped, use_bin_type=True)
    unpacked = msgpack.unpackb(packed, raw=False, strict_map_key=False, use_list=True)
    loaded = spec.load_result(unpacked)
    expected = tuple(value) if isinstance(value, tuple) else value
    assert loaded == expected
    assert type(loaded) is type(expected)


def _only_wire_types(value: Any) -> bool:
    if type(value) in (int, float, str, bytes, bool, type(None)):
        return True
    if type(value) is list:
        return all(_only_wire_types(item) for item in value)
    if type(value) is dict:
        return all(_only_wire_types(k) and _only_wire_types(v) for k, v in value.items())
    return False


def test_dump_result_refuses_values_that_break_the_declaration(everything: AdapterSpec) -> None:
    with pytest.raises(
        AdapterError, match=re.escape("Everything.wrong_result returned a value that does")
    ):
        everything.client_call("wrong_result").dump_result(Everything().wrong_result())
    with pytest.raises(AdapterError, match="declared return type int"):
        everything.client_call("echo_int").dump_result(True)
    with pytest.raises(AdapterError, match="echo_enum returned"):
        everything.client_call("echo_enum").dump_result("purple")


def test_dump_result_of_int_subclass_and_float_from_int(everything: AdapterSpec) -> None:
    assert everything.client_call("echo_float").dump_result(3) == 3.0
    assert type(everything.client_call("echo_float").dump_result(3)) is float


def test_load_result_refuses_wire_values_that_do_not_fit(everything: AdapterSpec) -> None:
    with pytest.raises(
        ProtocolError, match=re.escape("Everything.echo_int: result does not match")
    ):
        everything.client_call("echo_int").load_result("5")
    with pytest.raises(ProtocolError):
        everything.client_call("echo_enum").load_result("purple")


# --------------------------------------------------------------------------- describe


def test_describe_is_json_and_complete(everything: AdapterSpec) -> None:
    description = everything.describe()
    assert json.loads(json.dumps(description)) == description
    assert description["adapter"] == "tests.adapters_for_tests:Everything"
    assert description["doc"] == "Echoes one value of every carried type."
    assert description["default_policy"] == "manual"
    assert description["replicable"] is False
    assert description["fingerprint"] == everything.fingerprint
    calls = {call["name"]: call for call in description["calls"]}
    assert calls["load"]["startup"] is True and calls["load"]["deadline"] == 40.0
    assert calls["echo_float"]["timeout"] == 2.5
    assert calls["echo_int"]["params"] == [
        {
            "name": "x",
            "kind": "positional_or_keyword",
            "schema": {"type": "integer"},
            "required": True,
        }
    ]
    assert calls["echo_int"]["returns"] == {"type": "integer"}
    scale = calls["scale"]
    assert scale["doc"] == "Positional-only, ordinary and keyword-only parameters."
    assert [(p["name"], p["kind"], p["required"], p.get("default")) for p in scale["params"]] == [
        ("x", "positional_only", True, None),
        ("y", "positional_or_keyword", False, 1),
        ("factor", "keyword_only", False, 1.0),
    ]
    assert calls["echo_enum"]["params"][0]["schema"]["enum"] == ["red", "green"]
    assert calls["nothing"]["returns"] == {"type": "null"}


# --------------------------------------------------------------------------- fingerprint


def _adapter(doc: str, annotation: Any, name: str = "x") -> type[Adapter]:
    """A one-call adapter ``Mylib.calc(<name>: <annotation>) -> int`` documented ``doc``."""
    namespace: dict[str, Any] = {"Adapter": Adapter, "fast": fast, "T": annotation}
    source = f"""
class Mylib(Adapter):
    {doc!r}
    @fast
    def calc(self, {name}: T) -> int:
        {doc!r}
        return 1
"""
    exec(source, namespace)
    cls: type[Adapter] = namespace["Mylib"]
    return cls


def test_fingerprint_is_stable_across_loads_and_processes(mylib_spec: AdapterSpec) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", mylib_spec.fingerprint)
    assert load_adapter("examples.mylib_adapter").fingerprint == mylib_spec.fingerprint
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from threadhost.adapter import load_adapter;"
            "print(load_adapter('examples.mylib_adapter').fingerprint)",
        ],
        cwd=ROOT,
        env={**child_env(), "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == mylib_spec.fingerprint, result.stderr


def test_fingerprint_follows_signatures_not_docstrings() -> None:
    base = inspect_adapter(_adapter("One doc.", int)).fingerprint
    assert inspect_adapter(_adapter("Another doc entirely.", int)).fingerprint == base
    assert inspect_adapter(_adapter("One doc.", float)).fingerprint != base
    assert inspect_adapter(_adapter("One doc.", int, name="y")).fingerprint != base
    assert inspect_adapter(_adapter("One doc.", int | None)).fingerprint != base


def test_fingerprint_ignores_model_docstrings_but_not_fields() -> None:
    def with_dataclass(doc: str, extra_field: bool) -> str:
        fields: list[Any] = [("x", int)]
        if extra_field:
            fields.append(("y", int, dataclasses.field(default=0)))
        point = dataclasses.make_dataclass("Point", fields)
        point.__doc__ = doc
        return inspect_adapter(_adapter("doc", point)).fingerprint

    assert with_dataclass("A point.", False) == with_dataclass("Something else.", False)
    assert with_dataclass("A point.", False) != with_dataclass("A point.", True)


def test_fingerprint_matches_for_the_same_contract_elsewhere(mylib_spec: AdapterSpec) -> None:
    class Renamed(Adapter):
        """Other docs, other policy, same wire contract."""

        default_policy = "manual"

        @slow
        def read_config(self) -> None:
            """Different words."""

        @fast(timeout=9.0)
        def calc(self, x: int) -> int:
            return x

    assert inspect_adapter(Renamed).fingerprint == mylib_spec.fingerprint


# --------------------------------------------------------------------------- replicable


def _one_call(**attrs: Any) -> type[Adapter]:
    def calc(self: Adapter, x: int) -> int:
        return x

    return type("Mylib", (Adapter,), {**attrs, "calc": fast(calc)})


def test_replicable_defaults_to_false() -> None:
    assert Adapter.replicable is False
    spec = inspect_adapter(_one_call())
    assert spec.replicable is False
    assert spec.describe()["replicable"] is False


def test_replicable_true_is_honoured_and_described(mylib_spec: AdapterSpec) -> None:
    spec = inspect_adapter(_one_call(replicable=True))
    assert spec.replicable is True
    description = spec.describe()
    assert description["replicable"] is True
    assert json.loads(json.dumps(description)) == description
    assert mylib_spec.describe()["replicable"] is True  # examples.mylib_adapter says so


def test_replicable_is_inherited() -> None:
    base = _one_call(replicable=True)
    child = type("Child", (base,), {})
    assert inspect_adapter(child).replicable is True


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0, [True]])
def test_replicable_must_be_a_bool(value: Any) -> None:
    with pytest.raises(AdapterError, match=re.escape(
            f"Mylib.replicable must be True or False, got {value!r}")):
        inspect_adapter(_one_call(replicable=value))


def test_replicable_does_not_change_the_fingerprint(mylib_spec: AdapterSpec) -> None:
    assert (inspect_adapter(_one_call(replicable=True)).fingerprint
            == inspect_adapter(_one_call(replicable=False)).fingerprint
            == inspect_adapter(_one_call()).fingerprint)

    class NotReplicable(Mylib):
        replicable = False

    other = inspect_adapter(NotReplicable)
    assert other.replicable is False and mylib_spec.replicable is True
    assert other.fingerprint == mylib_spec.fingerprint


# --------------------------------------------------------------------------- CallSpec by hand


def test_callspec_can_be_built_directly() -> None:
    spec = CallSpec(
        name="add",
        kind="fast",
        doc="",
        params=(Param("a", int), Param("b", int, "keyword_only", True, 2)),
        returns=int,
        owner="Lib",
    )
    assert spec.bind([1], {"b": 3}) == ([1], {"b": 3})
    with pytest.raises(BadArgumentsError, match=re.escape("Lib.add: argument 'b'")):
        spec.bind([1], {"b": "3"})
    with pytest.raises(AdapterError, match=re.escape("Lib.add: parameter 'a' has annotation")):
        CallSpec(
            name="add", kind="fast", doc="", params=(Param("a", object),), returns=int, owner="Lib"
        )


# --------------------------------------------------------------------------- the real thing


def test_mylib_adapter_runs_everything_on_one_thread(tmp_path: Path) -> None:
    config = tmp_path / "mylib.toml"
    config.write_text("offset = 10\nread_max_seconds = 0\n")
    code = textwrap.dedent(
        """
        import threading
        from threadhost.adapter import load_adapter
        spec = load_adapter("examples.mylib_adapter")
        out = []
        def library_thread():
            adapter = spec.instantiate()
            adapter.setup()
            for call in spec.startup_calls:
                getattr(adapter, call.name)()
            call = spec.client_call("calc")
            args, kwargs = call.bind([5], {})
            out.append(call.dump_result(getattr(adapter, call.name)(*args, **kwargs)))
            adapter.teardown()
        worker = threading.Thread(target=library_thread)
        worker.start(); worker.join()
        print(out[0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**child_env(), "MYLIB_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "15"


def test_docs_python_blocks_run() -> None:
    """Every ```python block of docs/adapters.md runs standalone."""
    text = (ROOT / "docs" / "adapters.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 3
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{block}\n---\n{result.stderr}"
