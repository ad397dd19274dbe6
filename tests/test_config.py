from __future__ import annotations

import pytest

from dgreg import config


def test_scope_overrides_environment(monkeypatch):
    monkeypatch.setattr(config, "_overrides", [])  # drop the test suite's own isolation scope
    monkeypatch.setenv("DGREG_STRICT", "1")
    monkeypatch.setenv("DGREG_DISABLE_PLUGINS", " a, b ,,")
    assert config.get("DGREG_STRICT") is True
    assert config.disable_plugins == ("a", "b")
    with config.scope(DGREG_STRICT=False):
        assert config.strict is False
        with config.scope(DGREG_STRICT=True):
            assert config.strict is True
        assert config.strict is False
    assert config.strict is True
    monkeypatch.delenv("DGREG_STRICT")
    assert config.strict is False  # the default


def test_environment_parsing(monkeypatch):
    knob = config.KNOBS["DGREG_DISABLE_PLUGINS"]
    assert knob.parse(" a, b ,,") == ("a", "b")
    assert config.KNOBS["DGREG_STRICT"].parse("yes") is True
    with pytest.raises(ValueError, match="DGREG_STRICT must be one of"):
        config.KNOBS["DGREG_STRICT"].parse("maybe")


def test_unknown_names_are_errors():
    with pytest.raises(KeyError, match="unknown dgreg setting"):
        config.get("DGREG_NOPE")
    with pytest.raises(KeyError, match="unknown dgreg setting"), config.scope(DGREG_NOPE=1):
        pass
    with pytest.raises(AttributeError):
        config.nope  # noqa: B018


def test_describe_lists_every_setting_with_its_doc():
    rows = config.describe()
    assert {r["name"] for r in rows} == set(config.KNOBS)
    for row in rows:
        assert row["name"].startswith("DGREG_") and len(row["doc"]) > 20
