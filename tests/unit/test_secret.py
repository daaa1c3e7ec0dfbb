"""Secret never shows itself."""

from __future__ import annotations

import pickle

import pytest

from egress import ConfigurationError, Secret

KEY = "sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUv"


def test_never_shown() -> None:
    secret = Secret(KEY)
    for text in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>40}",
                 repr([secret]), repr({"k": secret})):
        assert KEY not in text
        assert "sk_test" not in text
    assert secret.reveal() == KEY
    assert secret.startswith("sk_test_")


def test_constant_time_equality_and_not_hashable() -> None:
    assert Secret(KEY) == Secret(KEY)
    assert Secret(KEY) != Secret(KEY + "x")
    with pytest.raises(TypeError):
        hash(Secret(KEY))


def test_cannot_be_pickled_or_empty() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))
    with pytest.raises(ConfigurationError):
        Secret("")
