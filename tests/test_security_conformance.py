"""The conformance kit's security checks (R60, R61) against a real CURVE broker, and a
broker that gets the roles wrong (an operator key passed off as a caller's) failing them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import free_endpoint
from tests.keys_helpers import Keys
from tests.test_security import procs, run_dir  # noqa: F401 - fixtures
from threadhost.conformance import run_conformance

SECURITY = ["broker.ping", "broker.curve-unknown-key", "broker.caller-role"]


@pytest.fixture
def curve_broker(keys: Keys, procs: Any) -> Iterator[str]:  # noqa: F811
    endpoint = free_endpoint()
    procs("broker", "--endpoint", endpoint, "--backend", free_endpoint(),
          *keys.server_args(), name="broker")
    yield endpoint


def test_a_curve_broker_passes_the_security_checks(keys: Keys,
                                                   curve_broker: str) -> None:
    report = run_conformance(curve_broker, select=SECURITY, timeout=5.0,
                             server_key=keys.public("broker"),
                             secret_key=keys.secret("olga"),
                             caller_key=keys.secret("alice"))
    assert report.ok, report.format()
    assert [r.status for r in report.results] == ["PASS", "PASS", "PASS"], report.format()


def test_an_operator_key_passed_off_as_a_caller_fails_the_role_check(
        keys: Keys, curve_broker: str) -> None:
    # the role check alone (the other security checks pass in the test above)
    report = run_conformance(curve_broker, select=["broker.caller-role"], timeout=5.0,
                             server_key=keys.public("broker"),
                             secret_key=keys.secret("olga"),
                             caller_key=keys.secret("olga"))
    assert report.result("broker.caller-role").status == "FAIL", report.format()
    assert "permission_denied" in report.result("broker.caller-role").detail


@pytest.mark.timeout(300)
def test_a_curve_broker_passes_the_whole_kit(keys: Keys, procs: Any) -> None:  # noqa: F811
    """Every broker check, through CURVE clients, nothing skipped: security changes
    nothing else on the wire."""
    endpoint, backend = free_endpoint(), free_endpoint()
    procs("broker", "--endpoint", endpoint, "--backend", backend, "--heartbeat-timeout",
          "1s", *keys.server_args(), name="broker")
    report = run_conformance(endpoint, backend=backend, heartbeat_timeout=1.0, timeout=3.0,
                             quiet=0.25, server_key=keys.public("broker"),
                             secret_key=keys.secret("olga"), caller_key=keys.secret("alice"))
    assert report.ok, report.format()
    assert not report.skipped, report.format()


def test_without_keys_the_security_checks_are_skipped() -> None:
    report = run_conformance("tcp://127.0.0.1:1", select=["broker.caller-role",
                                                          "broker.curve-unknown-key"])
    assert {r.status for r in report.results} == {"SKIP"}, report.format()
