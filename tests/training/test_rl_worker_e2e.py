"""GRPO and PPO runs end to end with real parts: launched through the REST API, done by a real
Celery worker process on the real Redis broker and the test PostgreSQL database, with a tiny
locally built policy and a tiny reward model from the registry, on CPU."""
from __future__ import annotations

import pytest

from annotation.models import Role
from rewards.models import RewardModel
from tests.factories import ProjectFactory, api_as, member
from training.models import RubricEval, RunKind, RunSample, RunStatus, SampleRole, SuiteResult

from .conftest import rl_prompt_set
from .test_worker_e2e import run_of, wait_for, worker_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.train]


def _reward_model(project, prompt_set, path: str, *, ready: bool) -> RewardModel:
    return RewardModel.objects.create(project=project, preference_set=prompt_set, name="tiny-rm", base_model=path,
                                      path=path, ready=ready, failures=[] if ready else ["overall accuracy 0.50 < 0.70"])


def test_grpo_and_ppo_runs_through_a_real_worker(tmp_path, settings, tiny_policy, tiny_backbone):
    settings.TRAINING_ROOT = str(tmp_path)
    # A rubric for math only: the worker sends each checkpoint's math answers, with the baseline's, to people.
    project = ProjectFactory(spec="# Spec\n\n## Rubric: math\n- Gives the right sum.\n")
    engineer = member(project, Role.ENGINEER)
    prompt_set = rl_prompt_set(project)
    ready = _reward_model(project, prompt_set, tiny_backbone, ready=True)
    unready = _reward_model(project, prompt_set, tiny_backbone, ready=False)
    api = api_as(engineer)
    common = {"policy_path": tiny_policy, "steps": 4, "generations": 4, "prompts_per_step": 2, "max_new_tokens": 4,
              "learning_rate": 1e-3, "checkpoint_every": 2, "suite_per_dimension": 2, "hardest_fraction": 0.5,
              "curriculum": True, "verifiers": ["math", "format"], "format_tags": []}

    # The gate: a reward model that is not ready is refused without a reason...
    refused = api.post(f"/api/projects/{project.slug}/rl-runs/", {
        "prompt_set": prompt_set.pk, "config": {**common, "algorithm": "ppo", "reward_model_id": unready.pk}},
        format="json")
    assert refused.status_code == 400 and "not ready" in str(refused.json()["config"]["reward_model_id"])

    with worker_process(tmp_path) as worker:
        grpo = api.post(f"/api/projects/{project.slug}/rl-runs/", {
            "prompt_set": prompt_set.pk, "config": {**common, "algorithm": "grpo", "reward_model_id": ready.pk}},
            format="json")
        assert grpo.status_code == 202, grpo.content
        # ...and accepted with one, which is recorded.
        ppo = api.post(f"/api/projects/{project.slug}/rl-runs/", {
            "prompt_set": prompt_set.pk, "override_reason": "smoke test of the PPO path",
            "config": {**common, "algorithm": "ppo", "reward_model_id": unready.pk, "kl_coef": 0.02}}, format="json")
        assert ppo.status_code == 202, ppo.content
        assert unready.overrides.get().reason == "smoke test of the PPO path"
        log = tmp_path / "worker.log"
        for run_id in (grpo.json()["id"], ppo.json()["id"]):
            wait_for(lambda run_id=run_id: run_of(run_id).status not in (RunStatus.QUEUED, RunStatus.RUNNING), timeout=240,
                     what=f"run {run_id} to end", log=log)
        assert worker.poll() is None

    for response, kind in ((grpo, RunKind.GRPO), (ppo, RunKind.PPO)):
        run = run_of(response.json()["id"])
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.kind == kind and run.step == 4
        metrics = list(run.metrics.order_by("step"))
        assert [m.step for m in metrics] == [1, 2, 3, 4]
        for m in metrics:  # every step: total and per-component reward, KL, length, hedging, lists, entropy
            assert {"reward", "reward/reward_model", "reward/math", "kl", "length", "hedging", "list_rate",
                    "entropy"} <= set(m.values)
            # PPO's KL is the sampled log-ratio (unbiased, a little below 0 at times); GRPO's TRL's k3 (>= 0).
            assert m.values["kl"] is not None and m.values["kl"] > -0.05
        assert [c["step"] for c in run.checkpoints] == [2, 4]
        # The behavioural suite ran on the start and on both checkpoints, for each dimension.
        tables = sorted(set(SuiteResult.objects.filter(run=run).values_list("step", "dimension")))
        assert tables == [(s, d) for s in (0, 2, 4) for d in ("chat", "math")]
        math_row = SuiteResult.objects.get(run=run, step=4, dimension="math")
        assert math_row.verified == math_row.prompts and math_row.verifier_pass is not None
        assert SuiteResult.objects.get(run=run, step=4, dimension="chat").verifier_pass is None  # nothing applies
        # Pre-PPO kept half of each domain's training prompts, math first.
        selection = run.summary["prompt_selection"]
        assert selection["scored_by"] == "reward model" and selection["curriculum"] is True
        for domain in selection["per_domain"].values():
            assert domain["kept"] == -(-domain["candidates"] // 2)
        assert RunSample.objects.filter(run=run, role=SampleRole.REFERENCE, step=0).count() > 0
        # Both checkpoints went to people as rubric evaluations: 2 math prompts, the checkpoint's
        # answers and the baseline's; chat has no rubric and was left out, as the log says.
        evals = RubricEval.objects.filter(run=run)
        assert sorted(set(evals.values_list("step", "role", "dimension"))) == [
            (s, role, "math") for s in (2, 4) for role in ("baseline", "checkpoint")]
        assert evals.count() == 8 and all(e.item.kind == "rubric" and e.item.in_live_queue for e in evals)
        assert run.logs.filter(message__contains="chat (the spec has no rubric for it)").count() == 2
        assert run.summary["final_policy"].endswith("checkpoint-4")
