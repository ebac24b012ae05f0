"""Both shared credential stores implement the one contract the manager relies on."""

import inspect
import re

import pytest

from wxsite.store.redis_credentials import RedisCredentialStore as RedisStore
from wxsite.store.credentials import CredentialStore as SqlStore
from wxsite.wechat.credentials import CredentialStore


def contract():
    return {
        name: inspect.signature(member)
        for name, member in vars(CredentialStore).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("store", [SqlStore, RedisStore])
def test_store_has_every_method_of_the_contract_with_its_parameters(store):
    for name, wanted in contract().items():
        have = inspect.signature(getattr(store, name))
        assert list(have.parameters) == list(wanted.parameters), name


def test_the_manager_calls_nothing_outside_the_contract():
    import wxsite.wechat.credentials as module

    called = set(re.findall(r"self\.store\.(\w+)\(", inspect.getsource(module)))
    assert called and called <= set(contract())
