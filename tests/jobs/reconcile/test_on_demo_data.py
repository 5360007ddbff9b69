"""The demo: demo-data's Stripe state served by ``python -m local_stripe`` (as the README's
run command does), reconciled by ``python -m jobs reconcile`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from jobs.reconcile.rules import KIND_RULES
from tests.support.demo import local_stripe_process

REPO = Path(__file__).resolve().parents[3]
def test_demo_reconciles_with_every_mismatch_kind(db, demo):
    with local_stripe_process(demo) as stripe_env:
        result = subprocess.run([sys.executable, "-m", "jobs", "reconcile", "--json"], cwd=REPO,
                                env={**os.environ, **stripe_env}, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 3, result.stderr  # review items are open in the demo
        report = json.loads(result.stdout)
        assert report["status"] == "completed"
        assert set(report["mismatches_by_kind"]) == set(KIND_RULES)
        assert report["auto_fixed_count"] > 0 and report["manual_review_needed"] > 0

        again = subprocess.run([sys.executable, "-m", "jobs", "reconcile", "--json"], cwd=REPO,
                               env={**os.environ, **stripe_env}, capture_output=True, text=True,
                               timeout=300)
        second = json.loads(again.stdout)
        assert second["auto_fixed_count"] == 0  # nothing fixed twice
        assert second["manual_review_needed"] == report["manual_review_needed"]
    with db.connect() as conn:
        open_items = conn.execute(sa.text("""SELECT count(*) FROM reconciliation_items
                                             WHERE action = 'manual_review' AND resolved_at IS NULL""")).scalar()
    assert open_items == report["manual_review_needed"]
