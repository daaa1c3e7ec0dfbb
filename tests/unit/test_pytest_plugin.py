"""The egress pytest plugin, run the way a user's suite runs it: through the entry point."""

from __future__ import annotations

import pytest

from egress import CircuitBreaker, CircuitState
from egress.stores import MEMORY_STORE
from egress.testing import isolated_state

_TWO_TESTS_SHARING_A_BREAKER = """
from egress import CircuitBreaker, CircuitState

def test_a_trips_the_breaker():
    CircuitBreaker("payments").trip()
    assert CircuitBreaker("payments").state is CircuitState.OPEN

def test_b_sees_a_fresh_breaker():
    assert CircuitBreaker("payments").state is CircuitState.CLOSED
"""


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    # The inner runs see this repository's pytest-asyncio: pin its loop scope as pyproject does.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_fixtures_come_from_the_entry_point_without_imports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import urllib.request

        def test_fixtures(fake_stripe, fake_clock, recording_sink, in_memory_payments,
                          sync_in_memory_payments):
            assert fake_stripe.url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(fake_stripe.url + "/_fake/stats") as answer:
                assert answer.status == 200
            fake_clock.advance(5)
            assert fake_clock.now() == 1005.0
            assert recording_sink.events == []
            assert in_memory_payments.payments() == []
            assert sync_in_memory_payments.payments() == []
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_each_test_gets_fresh_named_state(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_TWO_TESTS_SHARING_A_BREAKER)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_without_the_plugin_state_leaks_between_tests(pytester: pytest.Pytester) -> None:
    # The control: the same two tests fail without the plugin, so the test above can fail.
    pytester.makepyfile(_TWO_TESTS_SHARING_A_BREAKER)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:egress")
    result.assert_outcomes(passed=1, failed=1)
    MEMORY_STORE.clear()  # the inner run shared this process's store


def test_old_pytest_plugins_spelling_still_works(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["egress.testing.fake_stripe.pytest_plugin"]')
    pytester.makepyfile("""
        def test_fake(fake_stripe):
            assert fake_stripe.api_key
    """)
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:egress").assert_outcomes(passed=1)


def test_isolated_state_gives_a_block_its_own_state_and_restores_the_outer() -> None:
    outer = CircuitBreaker("search")
    outer.trip()
    with isolated_state() as store:
        assert store is MEMORY_STORE
        inner = CircuitBreaker("search")
        assert inner.state is CircuitState.CLOSED
        inner.trip()
    assert CircuitBreaker("search").state is CircuitState.OPEN
    assert CircuitBreaker("search")._state is outer._state


def test_isolated_state_restores_even_when_the_block_raises() -> None:
    CircuitBreaker("search").trip()
    with pytest.raises(RuntimeError), isolated_state():
        raise RuntimeError("boom")
    assert CircuitBreaker("search").state is CircuitState.OPEN
