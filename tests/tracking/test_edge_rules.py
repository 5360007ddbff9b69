"""The Edge Function kit reads the error policy from a generated copy
(integrations/supabase/functions/_shared/error_policy.ts); these fail when the copy, or the
TypeScript classifier's reading of it, disagrees with core/error_policy.py."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.error_policy import SQLSTATES, classify
from devharness.edge_function import KIT, deno_binary
from tests.conftest import REPO
from tracking.edge_rules import TARGET, render

SCRIPT = REPO / "tests" / "deno" / "classify_sqlstates.ts"


def test_the_generated_rules_are_the_python_declaration():
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "integrations/supabase/functions/_shared/error_policy.ts is out of date: run `python -m tracking.edge_rules`")


class _DriverError(Exception):
    """A database driver's error carrying a SQLSTATE, as psycopg's do."""

    def __init__(self, sqlstate: str):
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_both_classifiers_judge_every_sqlstate_alike():
    if deno_binary() is None:
        pytest.fail("deno is not installed: run `npm ci` in the repository (make test does)")
    # Every listed code and class, one code of each class, and codes of no listed class.
    codes = sorted({code if len(code) == 5 else code + "000" for code in SQLSTATES} | {"40P01", "23505", "XX000", "P0001"})
    result = subprocess.run([str(deno_binary()), "run", "--frozen", "--config", str(KIT / "deno.json"), str(SCRIPT),
                             *codes], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    deno = json.loads(result.stdout)
    python = {}
    for code in codes:
        verdict = classify(_DriverError(code))
        python[code] = {"category": verdict.category, "retryable": verdict.retryable, "transient": verdict.transient}
    assert deno == python


def test_check_says_when_the_kit_is_out_of_date_and_help_writes_nothing(capsys, tmp_path):
    from tracking import edge_rules

    copy = tmp_path / "error_policy.ts"
    with pytest.raises(SystemExit):
        edge_rules.main(["--help"], target=copy)
    assert not copy.exists()
    assert edge_rules.main(["--check"], target=edge_rules.TARGET) == 0  # the committed file is current
    assert edge_rules.main(["--check"], target=copy) == 1
    assert "out of date" in capsys.readouterr().err
    assert edge_rules.main([], target=copy) == 0
    assert copy.read_text(encoding="utf-8") == edge_rules.render()
