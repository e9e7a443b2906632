"""The analytics snapshot on PostgreSQL: a simulated pool stored as real judgments goes through the
loader and every block of the dashboard; the Celery worker computes snapshots; who may see them."""
from __future__ import annotations

import datetime as dt
import json
import time

import krippendorff
import numpy as np
import pytest

from annotation.models import Role
from calibration import agreement as ag
from calibration.generators import simulation as sm
from calibration.models import AnalyticsSnapshot, SnapshotStatus, StandingState
from calibration.services.analytics import (
    analytics_compute,
    analytics_policy_update,
    dataset_load,
    snapshot_request,
    snapshot_run,
)
from calibration.generators.simulation_store import simulation_store
from calibration.services.standing import standing_override
from tests.factories import ProjectFactory, api_as, celery_worker, member

POOL = ["expert"] * 6 + ["noisy"] * 2 + ["length", "position", "assertive", "formatting", "fast"]


@pytest.fixture
def simulated(db):
    project = ProjectFactory()
    sim = sm.simulate(kinds=POOL, n_items=500, per_item=7, seed=11, days=21)
    stored = simulation_store(project=project, sim=sim, prefix=f"sim{project.pk}")
    return project, sim, stored


def test_loaded_judgments_match_what_was_stored(simulated):
    project, sim, stored = simulated
    data = dataset_load(project=project)
    assert data.judgments.item.size == sim.item.size
    assert data.item_ids.tolist() == sorted(stored["items"])
    # Same choices per (item, annotator) as simulated, in canonical a/b terms.
    got = {(int(data.item_ids[i]), data.usernames[a]): c for i, a, c in
           zip(data.judgments.item, data.judgments.annotator, data.judgments.choice)}
    users = stored["users"]
    for j in range(0, sim.item.size, 97):
        key = (stored["items"][sim.item[j]], users[sim.annotator[j]].username)
        assert got[key] == sim.choice[j]
    assert len(np.unique(data.created // 86400)) > 10  # the simulated days survived the load
    assert (data.items.expert >= 0).sum() == sim.is_anchor.sum()


def test_dashboard_numbers_on_a_simulated_pool(simulated, capsys):
    project, sim, _ = simulated
    started = time.perf_counter()
    payload = analytics_compute(project=project)
    elapsed = time.perf_counter() - started

    overall = payload["agreement"]["overall"]
    # Oracle: the krippendorff package on the same data as a dense annotators x items matrix.
    dense = np.full((len(POOL), len(sim.prompts)), np.nan)
    dense[sim.annotator, sim.item] = sim.choice
    expected = krippendorff.alpha(reliability_data=dense, level_of_measurement="nominal", value_domain=[0, 1, 2, 3])
    assert overall["alpha_nominal"]["value"] == pytest.approx(expected, abs=1e-4)
    assert overall["alpha_nominal"]["low"] < overall["alpha_nominal"]["value"] < overall["alpha_nominal"]["high"]
    assert overall["units"] == 500 and overall["ratings"] == sim.item.size
    assert "alpha_ordinal" in overall
    assert set(payload["agreement"]["domains"]) == set(sm.DOMAINS)
    assert len(payload["agreement"]["time"]) == 3  # 21 days in 7-day windows
    assert sum(w["judgments"] for w in payload["agreement"]["time"]) == sim.item.size

    pairwise = payload["pairwise"]
    assert len(pairwise["annotators"]) == len(POOL) and len(pairwise["kappa"]) == len(POOL)
    assert pairwise["kappa"][0][0] is None and pairwise["kappa"][0][1] is not None

    flags = {row["username"].split("-")[1]: {f["kind"] for f in row["flags"]} for row in payload["annotators"]}
    with capsys.disabled():
        print(f"\nanalytics on {sim.item.size} judgments in {elapsed * 1000:.0f} ms; flags by kind: {flags}")
    for kind, got in flags.items():
        assert got == ({sm.EXPECTED_FLAG[kind]} if kind in sm.EXPECTED_FLAG else set()), kind
    # Example items are real item ids of this project.
    example = next(f for row in payload["annotators"] for f in row["flags"])
    assert example["examples"] and all(isinstance(x, int) for x in example["examples"])

    contested = payload["contested"]
    assert contested["total"] > 0
    first = contested["items"][0]
    assert first["disagreement"] >= 0.5 and sum(first["votes"].values()) == first["judgments"]
    assert payload["health"]["pairs"] > 400
    assert payload["counts"]["annotators"] == len(POOL)


def test_per_dimension_agreement_uses_only_judgments_with_that_dimension(db):
    from annotation.models import Judgment

    project = ProjectFactory()
    sim = sm.simulate(kinds=["expert"] * 4, n_items=60, per_item=3, seed=2)
    simulation_store(project=project, sim=sim, prefix=f"dim{project.pk}")
    # Half the judgments carry a helpfulness choice: their main choice, or "tie" on every fifth.
    rows = list(Judgment.objects.filter(project=project).order_by("id").values_list("id", "choice", "item_id",
                                                                                  "annotator_id"))
    labelled = []
    for n, (pk, choice, item_id, annotator_id) in enumerate(rows[::2]):
        value = "tie" if n % 5 == 0 else choice
        Judgment.objects.filter(pk=pk).update(dimension_choices={"helpfulness": value})
        labelled.append((item_id, annotator_id, ["a", "b", "tie", "both_bad"].index(value)))
    payload = analytics_compute(project=project)
    dims = payload["agreement"]["dimensions"]
    items = sorted({r[0] for r in labelled})
    annotators = sorted({r[1] for r in labelled})
    dense = np.full((len(annotators), len(items)), np.nan)
    for item_id, annotator_id, value in labelled:
        dense[annotators.index(annotator_id), items.index(item_id)] = value
    expected = krippendorff.alpha(reliability_data=dense, level_of_measurement="nominal", value_domain=[0, 1, 2, 3])
    assert dims["helpfulness"]["alpha_nominal"]["value"] == pytest.approx(expected, abs=1e-4)
    assert dims["helpfulness"]["ratings"] == int((~np.isnan(dense[:, (~np.isnan(dense)).sum(axis=0) >= 2])).sum())
    assert dims["accuracy"]["units"] == 0 and dims["accuracy"]["alpha_nominal"]["value"] is None


def test_excluded_annotators_stay_in_agreement_but_leave_dataset_health(simulated):
    project, sim, stored = simulated
    before = analytics_compute(project=project)
    lead = member(project, Role.LEAD)
    length_user = stored["users"][POOL.index("length")]
    standing_override(project=project, annotator=length_user, to_state=StandingState.EXCLUDED, actor=lead,
                      reason="Length bias confirmed.")
    after = analytics_compute(project=project)
    assert after["agreement"]["overall"]["ratings"] == before["agreement"]["overall"]["ratings"]
    assert after["health"]["excluded_judgments"] == int((sim.annotator == POOL.index("length")).sum())
    row = next(r for r in after["annotators"] if r["username"] == length_user.username)
    assert row["standing"] == "excluded"


def test_thresholds_are_project_settings(simulated):
    project, _, _ = simulated
    analytics_policy_update(project=project, changes={"bias_margin": 0.9, "position_margin": 0.49, "fast_share": 1.0,
                                                      "min_judgments": 100000})
    payload = analytics_compute(project=project)
    assert all(not row["flags"] for row in payload["annotators"])
    assert payload["thresholds"]["bias_margin"] == 0.9


def test_bad_settings_are_refused_with_field_errors(db):
    from annotation.errors import ValidationFailed

    project = ProjectFactory()
    with pytest.raises(ValidationFailed) as exc:
        analytics_policy_update(project=project, changes={"hard_share_min": 0.4, "hard_share_max": 0.2,
                                                          "domain_targets": {"code": 0.8, "math": 0.5}})
    assert set(exc.value.field_errors) == {"hard_share_max", "domain_targets"}


def test_a_snapshot_is_computed_once_and_a_second_request_joins_the_pending_one(simulated, django_capture_on_commit_callbacks):
    project, _, _ = simulated
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = snapshot_request(project=project)
        second = snapshot_request(project=project)
    assert first.pk == second.pk and len(callbacks) == 1
    done = snapshot_run(snapshot_id=first.pk)
    assert done.status == SnapshotStatus.SUCCEEDED and done.duration_ms > 0 and done.percent == 100
    assert done.judgments_seen == 500 * 7 and done.payload["counts"]["judgments"] == 500 * 7
    assert snapshot_run(snapshot_id=first.pk) is None  # idempotent by status


def test_a_computation_that_crashes_is_marked_failed_with_its_reason(db, monkeypatch):
    from calibration.services import analytics

    project = ProjectFactory()
    snapshot = AnalyticsSnapshot.objects.create(project=project)
    monkeypatch.setattr(analytics, "dataset_load", lambda **kw: (_ for _ in ()).throw(MemoryError("out of memory")))
    with pytest.raises(MemoryError):
        snapshot_run(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == SnapshotStatus.FAILED and "out of memory" in snapshot.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("celery")
def test_the_celery_worker_computes_a_requested_snapshot(settings):
    project = ProjectFactory()
    sim = sm.simulate(kinds=POOL, n_items=80, per_item=5, seed=3)
    simulation_store(project=project, sim=sim, prefix=f"cel{project.pk}")
    lead = member(project, Role.LEAD)
    with celery_worker(settings):
        response = api_as(lead).post(f"/api/projects/{project.slug}/analytics/refresh/")
        assert response.status_code == 202, response.content
        snapshot_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snapshot = AnalyticsSnapshot.objects.get(pk=snapshot_id)
            if snapshot.status in (SnapshotStatus.SUCCEEDED, SnapshotStatus.FAILED):
                break
            time.sleep(0.2)
    assert snapshot.status == SnapshotStatus.SUCCEEDED, snapshot.error
    body = api_as(lead).get(f"/api/projects/{project.slug}/analytics/").json()
    assert body["snapshot"]["id"] == snapshot_id and body["payload"]["counts"]["judgments"] == 400


def test_overall_alpha_equals_the_oracle_after_dimension_codes_and_missing_values(simulated):
    # The ordinal α of the dashboard is the package's ordinal α on the signed strength scale.
    project, sim, _ = simulated
    payload = analytics_compute(project=project)
    signed = np.where(sim.choice == 0, 2 - sim.strength, np.where(sim.choice == 1, 4 + sim.strength,
                                                                 np.where(sim.choice == 2, 3, -1)))
    dense = np.full((len(POOL), len(sim.prompts)), np.nan)
    ok = signed >= 0
    dense[sim.annotator[ok], sim.item[ok]] = signed[ok]
    expected = krippendorff.alpha(reliability_data=dense, level_of_measurement="ordinal", value_domain=list(range(7)))
    assert payload["agreement"]["overall"]["alpha_ordinal"]["value"] == pytest.approx(expected, abs=1e-4)
    assert ag.CI_LEVEL == 0.95


def test_the_postgresql_fast_load_reads_exactly_what_the_portable_one_reads(simulated):
    from annotation.models import Judgment
    from calibration.services.analytics import (
        _judgment_columns_orm,
        _judgment_columns_postgresql,
    )

    project, _, _ = simulated
    # Give some judgments dimension choices and a missing strength, so every packed field is exercised.
    ids = list(Judgment.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    Judgment.objects.filter(pk__in=ids[::3]).update(dimension_choices={"helpfulness": "b", "tone": "both_bad"})
    Judgment.objects.filter(pk__in=ids[1::5]).update(dimension_choices={"accuracy": "tie", "safety": "a"})
    blanked = Judgment.objects.filter(pk__in=ids[2::7], choice="a").update(strength="")
    dims = project.dimension_keys
    portable = _judgment_columns_orm(project, dims)
    fast = _judgment_columns_postgresql(project, dims)
    order_p, order_f = np.lexsort(portable[:, :2].T), np.lexsort(fast[:, :2].T)
    np.testing.assert_array_equal(portable[order_p], fast[order_f])
    assert (fast[:, 7:] >= 0).any()
    assert blanked > 0 and ((fast[:, 2] == 0) & (fast[:, 3] == -1)).sum() == blanked  # A without a strength


def test_new_judgments_since_the_snapshot_are_counted(simulated, django_capture_on_commit_callbacks):
    from calibration import selectors

    project, sim, stored = simulated
    with django_capture_on_commit_callbacks(execute=False):
        snapshot = snapshot_request(project=project)
    snapshot_run(snapshot_id=snapshot.pk)
    assert selectors.analytics_state(project=project)["new_judgments"] == 0
    extra = sm.simulate(kinds=["expert"] * 3, n_items=4, per_item=3, seed=9)
    simulation_store(project=project, sim=extra, prefix=f"late{project.pk}")
    assert selectors.analytics_state(project=project)["new_judgments"] == 12


@pytest.mark.parametrize("judgments", [0, 1, 3])
def test_tiny_projects_compute_without_numbers_they_cannot_have(db, judgments):
    project = ProjectFactory()
    if judgments:
        sim = sm.simulate(kinds=["expert"] * 3, n_items=1, per_item=judgments, seed=1)
        simulation_store(project=project, sim=sim, prefix=f"tiny{project.pk}")
    payload = analytics_compute(project=project)
    json.dumps(payload, allow_nan=False)  # null where a number cannot exist, never NaN
    assert payload["counts"]["judgments"] == judgments
    overall = payload["agreement"]["overall"]
    if judgments < 2:
        assert overall["units"] == 0 and overall["alpha_nominal"]["value"] is None
    else:
        assert overall["units"] == 1
    assert payload["health"]["items_judged"] == (1 if judgments else 0)
    assert payload["pairwise"]["pairs"] == 0  # never five shared items


def test_a_failed_computation_is_not_retried_by_every_visit(simulated, django_capture_on_commit_callbacks):
    from calibration import selectors
    from calibration.services.analytics import snapshot_refresh_if_stale

    project, _, _ = simulated
    AnalyticsSnapshot.objects.create(project=project, status=SnapshotStatus.FAILED, error="boom")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert snapshot_refresh_if_stale(project=project, state=selectors.analytics_state(project=project)) is None
    assert callbacks == []


def test_a_queued_computation_no_worker_picked_up_is_failed_by_the_next_request(simulated, django_capture_on_commit_callbacks):
    project, _, _ = simulated
    with django_capture_on_commit_callbacks(execute=False):
        lost = snapshot_request(project=project)
    AnalyticsSnapshot.objects.filter(pk=lost.pk).update(requested_at=lost.requested_at - dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        fresh = snapshot_request(project=project)
    lost.refresh_from_db()
    assert fresh.pk != lost.pk and len(callbacks) == 1
    assert lost.status == SnapshotStatus.FAILED and "No worker finished it" in lost.error


def test_only_the_last_few_snapshots_are_kept(db):
    from calibration.services.analytics import KEEP_SNAPSHOTS

    project = ProjectFactory()
    sim = sm.simulate(kinds=["expert"] * 3, n_items=10, per_item=3, seed=4)
    simulation_store(project=project, sim=sim, prefix=f"keep{project.pk}")
    for _ in range(KEEP_SNAPSHOTS + 2):
        snapshot_run(snapshot_id=AnalyticsSnapshot.objects.create(project=project).pk)
    assert AnalyticsSnapshot.objects.filter(project=project).count() == KEEP_SNAPSHOTS
