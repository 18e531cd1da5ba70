"""What a client call costs, pinned by mechanism, not by timing (docs/performance.md):

* a call whose arguments are plain scalars is not walked by the carriability check (the
  codec alone decides); containers and other values still are;
* the sync client sets its socket's receive timeout once for calls with the same timeout,
  not per call;
* the asyncio client delivers replies from one reader registered with its loop: a call
  adds no reader and starts no task; the reader moves with the client to another loop and
  is removed when the client closes.

The figures themselves: ``python -m benchmarks.hop`` (client CPU per call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import threadhost
from tests.client_fake_broker import ClientFakeBroker as FakeBroker
from threadhost import client as client_module
from threadhost import transport
from threadhost.client import AsyncClient
from threadhost.errors import BadArgumentsError

pytestmark = pytest.mark.timeout(60)


def echo(call: Any) -> Any:
    return [call.args, call.kwargs]


@pytest.fixture
def fake() -> Iterator[FakeBroker]:
    with FakeBroker({"calc": lambda call: call.args[0] + 1, "echo": echo}) as broker:
        yield broker


def test_plain_scalar_arguments_are_not_walked(fake: FakeBroker,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[str] = []
    real = client_module._uncarriable

    def counting(value: Any, path: str, depth: int = 0) -> Any:
        walked.append(path)
        return real(value, path, depth)

    monkeypatch.setattr(client_module, "_uncarriable", counting)
    with threadhost.connect(fake.endpoint, timeout=5.0) as lib:
        assert lib.calc(5) == 6
        assert lib.echo(1, 2.5, "s", b"b", True, None, k=-(2**63), m=2**64 - 1) == [
            [1, 2.5, "s", b"b", True, None], {"k": -(2**63), "m": 2**64 - 1}]
        assert walked == []
        assert lib.echo([1, {"a": 2}]) == [[[1, {"a": 2}]], {}]  # a container is walked
        assert walked
        walked.clear()
        with pytest.raises(BadArgumentsError, match=r"kwargs\['x'\]"):
            lib.echo(1, x={2})  # a set among scalars: refused before sending, as before
        assert walked
        walked.clear()
        with pytest.raises(BadArgumentsError, match="out of range"):
            lib.calc(2**70)  # a plain int the codec refuses: walked only then, to say where
        assert walked


def test_the_receive_timeout_is_set_once_for_calls_with_the_same_timeout(
    fake: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets: list[int] = []
    real = transport.set_recv_timeout

    def counting(sock: Any, ms: int) -> None:
        sets.append(ms)
        real(sock, ms)

    monkeypatch.setattr(transport, "set_recv_timeout", counting)
    with threadhost.connect(fake.endpoint, timeout=5.0) as lib:
        assert lib.calc(0) == 1  # connected (a call that waited for it waits what is left)
        sets.clear()
        for i in range(20):
            assert lib.calc(i) == i + 1
        assert sets in ([], [5001])  # the whole timeout, set once
        sets.clear()
        assert lib.with_timeout(2.0).calc(1) == 2  # another timeout: set again
        assert lib.calc(1) == 2
        assert lib.calc(1) == 2
        assert sets == [2001, 5001]


def test_async_calls_add_no_reader_and_no_task(fake: FakeBroker) -> None:
    async def main(lib: AsyncClient) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        added: list[int] = []
        tasks: list[object] = []
        real_add, real_task = loop.add_reader, loop.create_task

        def add_reader(fd: Any, callback: Any, *args: Any) -> None:
            added.append(fd)
            real_add(fd, callback, *args)

        def create_task(coro: Any, **kwargs: Any) -> Any:
            tasks.append(coro)
            return real_task(coro, **kwargs)

        assert await lib.calc(0) == 1  # the first call on a loop registers the reader
        loop.add_reader = add_reader  # type: ignore[method-assign]
        loop.create_task = create_task  # type: ignore[method-assign]
        for i in range(20):
            assert await lib.calc(i) == i + 1
        counted = len(added), len(tasks)
        # concurrent calls (gather's own tasks aside) share the same reader
        assert list(await asyncio.gather(*(lib.calc(i) for i in range(50)))) == list(
            range(1, 51))
        assert len(added) == counted[0]
        return counted

    lib = AsyncClient(fake.endpoint, timeout=5.0)
    assert asyncio.run(main(lib)) == (0, 0)
    # a second loop (the first is closed): the reader moves with the client
    assert asyncio.run(main(lib)) == (0, 0)

    async def close_and_check() -> None:
        assert await lib.calc(1) == 2
        loop = asyncio.get_running_loop()
        fd = lib._t._fd
        assert fd is not None
        await lib.close()
        assert not loop.remove_reader(fd)  # close removed it

    asyncio.run(close_and_check())
