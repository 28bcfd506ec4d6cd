"""Support's sync commands end to end: resync waits that say what they wait for, retries that redo failed
work, and output that reads the same on a terminal and in a pipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import update

from connector import syncs
from connector.models import Merchant
from connector.sandbox.feeds import write_feed
from tests.helpers import drain


def test_retrying_a_failed_sync_job_runs_the_sync_again(cli, rt, tmp_path: Path):
    feed = write_feed(tmp_path / "feed.csv", 5)
    kept = shutil.copy(feed, tmp_path / "kept.csv")
    cli("merchants", "add", "feed", "--name", "acme", "--url", str(feed), "--no-sync")
    feed.unlink()
    cli("resync", "acme", "--no-wait")
    drain(rt)
    failed = json.loads(cli("jobs", "failed", "--json"))
    [run] = failed["sync_runs"]
    assert "feed_not_found" in run["error"]

    shutil.copy(kept, feed)  # the cause is fixed
    out = cli("jobs", "retry", "--all")
    assert f"sync run {run['run']} reopened" in out and "requeued 1 job(s)" in out
    drain(rt)
    final = syncs.get_run(rt, run["run"])
    assert (final.status, final.created, final.error) == ("succeeded", 5, None)
    assert json.loads(cli("jobs", "failed", "--json")) == {"jobs": [], "sync_runs": []}
    assert "no failed jobs to retry" in cli("jobs", "retry", "--all")


def test_a_failed_job_whose_work_cannot_be_redone_says_why(cli, rt, tmp_path: Path):
    feed = write_feed(tmp_path / "feed.csv", 3)
    cli("merchants", "add", "feed", "--name", "acme", "--url", str(feed), "--no-sync")
    feed.unlink()
    cli("resync", "acme", "--no-wait")
    drain(rt)
    [job] = json.loads(cli("jobs", "failed", "--json"))["jobs"]
    with rt.db.session() as session:
        session.execute(update(Merchant).values(status="paused", problem="store refused credentials"))
    out = cli("jobs", "retry", job["id"], expect=1)
    assert f"{job['id']} not retried: merchant 1 of sync run 1 is paused: store refused credentials" in out
    assert "requeued 0 job(s), 1 not retried" in out
    assert [j["id"] for j in json.loads(cli("jobs", "failed", "--json"))["jobs"]] == [job["id"]]
