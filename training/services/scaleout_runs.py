"""Policy runs too large for one machine: the worker writes what OpenRLHF or verl needs
(training/scaleout.py), submits it to the Ray cluster's job API, and follows the job until it ends,
so the run reads the same as a local one: status, phase, log, cancel (which stops the Ray job), and
failure with Ray's own message. The data and the command are kept on the run (`external`) and in
its directory, so an engineer can also submit them by hand."""
from __future__ import annotations

import time

from django.conf import settings

from rewards.services.sets import set_rows

from ..config import RLRunConfig
from ..models import Run
from .reward_runs import run_dir
from .runs import run_cancelled, run_fail, run_guarded, run_log, run_phase, run_should_stop, run_succeed

# Ray being briefly unreachable while a job runs is not the job failing; this many polls in a row is.
UNREACHABLE_POLLS = 30


def _update_external(run_id: int, **fields) -> dict:
    run = Run.objects.get(pk=run_id)
    external = {**run.external, **fields}
    Run.objects.filter(pk=run_id).update(external=external)
    return external


def external_spec(*, run: Run, config: RLRunConfig):
    from ..scaleout import openrlhf_spec, verl_spec

    out = run_dir(run) / config.engine
    reward_path = run.reward_model.path if run.reward_model else None
    options = {**config.to_dict(), "save_dir": str(run_dir(run) / "checkpoints")}
    if config.engine == "openrlhf":
        if reward_path is None:
            raise ValueError("OpenRLHF's PPO needs a reward model; choose one from the registry.")
        rows = set_rows(preference_set=run.preference_set, fmt="openrlhf-prompt", split="train")
        return openrlhf_spec(prompt_rows=rows, out_dir=out, pretrain=config.policy_path, reward_pretrain=reward_path,
                             settings=options)
    rows = set_rows(preference_set=run.preference_set, fmt="verl")
    return verl_spec(prompt_rows=rows, out_dir=out, model_path=config.policy_path, reward_model_path=reward_path,
                     settings=options)


def external_run_execute(*, run_id: int, node: str = "") -> Run | None:
    config = RLRunConfig.from_dict(Run.objects.get(pk=run_id).config)
    return run_guarded(run_id=run_id, device=f"Ray cluster ({config.engine}, {config.nodes} x {config.gpus_per_node} GPUs)",
                       node=node, body=lambda run: _execute(run, config))


def _execute(run: Run, config: RLRunConfig) -> None:
    from ..scaleout import RayJobError, RayJobs, RayUnavailable, ray_submit_command

    run_phase(run_id=run.pk, phase=f"writing the {config.engine} job")
    spec = external_spec(run=run, config=config)
    submission_id = f"prefstudio-run-{run.pk}"
    command = ray_submit_command(spec, config.ray_address, submission_id=submission_id)
    _update_external(run.pk, engine=config.engine, address=config.ray_address, submission_id=submission_id,
                     state="SUBMITTING", files=[str(p) for p in spec.files], entrypoint=spec.entrypoint,
                     submit_command=" ".join(command), notes=spec.notes)
    run_log(run_id=run.pk, message=f"{config.engine} job written:\n{spec.describe()}")
    ray = RayJobs(config.ray_address)
    run_phase(run_id=run.pk, phase=f"submitting to Ray at {config.ray_address}")
    ray.submit(entrypoint=spec.entrypoint, submission_id=submission_id, runtime_env=spec.runtime_env,
               metadata={"prefstudio_run": run.pk, "project": run.project.slug, "engine": config.engine})
    run_log(run_id=run.pk, message=f"Submitted as Ray job {submission_id}.")
    poll = settings.RAY_POLL_SECONDS
    missed, last, stop_sent = 0, "", False
    while True:
        if not stop_sent and run_should_stop(run_id=run.pk):
            try:
                stopped = ray.stop(submission_id)
            except (RayUnavailable, RayJobError) as exc:  # asked again at the next poll
                run_log(run_id=run.pk, level="warning", message=f"Could not ask Ray to stop the job yet: {exc}")
            else:
                stop_sent = True
                run_log(run_id=run.pk, level="warning",
                        message="Asked Ray to stop the job." if stopped else "The Ray job had already ended.")
        try:
            state = ray.status(submission_id)
            missed = 0
        except RayUnavailable as exc:
            missed += 1
            if missed >= UNREACHABLE_POLLS:
                raise
            run_log(run_id=run.pk, level="warning", message=f"{exc}; retrying.")
            time.sleep(poll)
            continue
        if state.status != last:
            last = state.status
            _update_external(run.pk, state=state.status, message=state.message)
            run_phase(run_id=run.pk, phase=f"Ray job {state.status.lower()}")
        if state.terminal:
            break
        time.sleep(poll)
    _update_external(run.pk, logs_tail=ray.logs(submission_id)[-5000:])
    if state.status == "SUCCEEDED":
        run_succeed(run_id=run.pk, summary={**Run.objects.get(pk=run.pk).summary, "ray_job": state.status})
    elif state.status == "STOPPED":
        run_cancelled(run_id=run.pk)
    else:
        run_fail(run_id=run.pk, reason=f"The Ray job {submission_id} {state.status.lower()}: {state.message}")
