"""The site's protocol constants and the emulator's own WeChat facts agree, name by name.

Each side writes WeChat's paths, errcodes, scopes and lifetimes down itself (SPEC §1):
this test is where a disagreement shows, instead of being mirrored by the stand-in.
"""

import pytest

from wxsite.emulator import wechat_facts as facts
from wxsite.wechat import protocol

#: The site's own policy built on WeChat's facts (which errcodes to retry, …): not facts.
SITE_ONLY = {
    "MEDIA_ID_PATTERN",
    "CREDENTIAL_ERRCODES",
    "RETRY_ERRCODES",
    "CONFIG_ERRCODES",
}
#: The emulator's errmsg wording (the site reads errcodes only, as WeChat asks).
NOT_COMPARED = {"ERRMSG"}


def _constants(module):
    return {name: getattr(module, name) for name in dir(module) if name.isupper()}


SITE = _constants(protocol)
EMULATOR = _constants(facts)
SHARED = sorted(set(SITE) & set(EMULATOR) - NOT_COMPARED)


def test_the_two_sets_share_what_the_site_uses():
    # Every WeChat fact the site writes down, the emulator writes down too.
    assert set(SITE) - set(EMULATOR) - NOT_COMPARED == SITE_ONLY
    assert len(SHARED) >= 50


@pytest.mark.parametrize("name", SHARED)
def test_same_name_same_value(name):
    assert SITE[name] == EMULATOR[name], f"{name}: site {SITE[name]!r}, emulator {EMULATOR[name]!r}"


def test_no_errcode_number_under_two_names():
    names = {n for n, v in EMULATOR.items() if isinstance(v, int) and v in facts.ERRMSG}
    assert len(names) >= 25
    for constants in (SITE, EMULATOR):
        found = {n: constants[n] for n in names if n in constants}
        assert len(set(found.values())) == len(found), sorted(found.items(), key=lambda x: x[1])


def test_the_site_policy_names_errcodes_the_emulator_knows():
    for name in SITE_ONLY - {"MEDIA_ID_PATTERN"}:
        unknown = set(SITE[name]) - set(facts.ERRMSG)
        assert not unknown, f"{name}: {sorted(unknown)} are not errcodes in wechat_facts"


def test_a_mismatch_fails():
    """Guard the guard: a swapped errcode on either side is caught."""
    swapped = dict(SITE, INVALID_CODE=protocol.CODE_USED)
    bad = [n for n in SHARED if swapped[n] != EMULATOR[n]]
    assert bad == ["INVALID_CODE"]
