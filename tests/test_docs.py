"""The docs stay true: every hook, setting and command the code defines is in the README."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from dgreg import config, hookspecs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _hookspec_functions():
    return {name: fn for name, fn in vars(hookspecs).items()
            if name.startswith("dgreg_") and callable(fn)}


def test_hook_names_list_every_hookspec():
    assert set(_hookspec_functions()) == set(hookspecs.HOOK_NAMES)


def test_every_hook_is_documented_with_its_signature():
    for name, fn in _hookspec_functions().items():
        params = ", ".join(inspect.signature(fn).parameters)
        assert f"`{name}({params})`" in README, f"README lacks `{name}({params})`"
        doc = inspect.getdoc(fn) or ""
        firstresult = fn.dgreg_spec["firstresult"]
        expected = "firstresult;" if firstresult else "Collecting;"
        assert expected in doc, f"{name}'s docstring must say it is {expected.rstrip(';')}"
        readme_row = next(line for line in README.splitlines() if f"`{name}(" in line)
        assert ("firstresult" in readme_row) == firstresult


def test_every_setting_is_documented():
    for name in config.KNOBS:
        assert f"`{name}`" in README, f"README lacks {name}"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.+?)\n```", README, flags=re.S)
    assert len(commands) == 2, "the README gives exactly two set-up commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_every_cli_command_is_documented():
    from dgreg.cli import COMMANDS

    for command in COMMANDS:
        assert f"`dgreg {command}" in README, f"README lacks dgreg {command}"
