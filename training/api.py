"""REST: training runs (start, watch, cancel), policy runs (GRPO/PPO: alerts, behavioural suite,
feedback batches), the reward-model registry, readiness minimums and monitor thresholds.

AI judges: leads and engineers register them, start their jobs and read how they are doing.
Leads and engineers read runs and the registry; engineers start and cancel runs and choose reward
models for RL; leads and engineers turn alerts and weak checkpoints into labelling batches and set
the monitor thresholds; annotators see none of it (403), non-members get 404.
"""
from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.errors import ValidationFailed
from annotation.permissions import can_export, can_lead, can_train
from annotation.selectors import project_get_for_member
from rewards.models import RewardModel
from rewards.selectors import preference_set_of, reward_model_by_id, reward_models_of
from rewards.services.registry import NotReady, readiness_minimums_set, readiness_thresholds, reward_model_select_for_rl

from .config import GenerativeJudgeConfig, RewardRunConfig, RLRunConfig
from .services.item_scores import item_scoring_latest, item_scoring_request
from .services.judges import judge_create, judge_job_progress, judge_job_request, judges_report
from .models import RL_KINDS, Judge, Run
from .selectors import (
    alert_get, judge_by_id, judge_job_by_id, judge_jobs_of, run_alerts, run_by_id, run_feedback_batches, run_logs, run_metrics, run_suite, runs_of,
)
from .serializers import (
    AlertOutput, FeedbackBatchInput, FeedbackBatchOutput, HumanSuiteInput, ItemScoringInput, ItemScoringOutput, JudgeInput, JudgeJobInput, JudgeJobOutput, JudgeOutput,
    JudgeReportOutput, LogOutput, MetricOutput, ReadinessInput, RewardModelOutput,
    RLRunInput, RunInput, RunOutput, SelectInput, SelectOutput, SuiteOutput,
)
from .services.feedback import FeedbackError, feedback_batch_create
from .services.human_suite import HumanSuiteError, human_suite_report, rubric_checkpoint_send
from .services.judge_runs import generative_judge_run_create
from .services.reward_runs import RunConfigError, reward_run_create
from .services.rl_runs import monitor_thresholds, monitor_thresholds_set, rl_run_create
from .services.retry import run_retry
from .services.runs import RunStateError, run_cancel, run_fresh


def _project(request, slug: str, *, write: bool = False):
    project = project_get_for_member(slug=slug, user=request.user)
    if write and not can_train(user=request.user, project=project):
        raise PermissionDenied("Only engineers start runs and choose reward models.")
    if not can_export(user=request.user, project=project):
        raise PermissionDenied("Only leads and engineers see training runs and reward models.")
    return project


def _run_for(request, run_id: int, *, write: bool = False) -> Run:
    run = run_by_id(pk=run_id)
    if run is None:
        raise NotFound("No such run.")
    _project(request, run.project.slug, write=write)
    return run_fresh(run=run)


def _queued_run(project, data: dict, set_field: str, config_cls, start) -> Response:
    """The one start path of both run kinds: the set named by `set_field` must be this project's,
    `start(set, config)` creates the run; a config the service refuses is a 400 on `config` with
    every bad field. Answers 202 with the queued run."""
    chosen = preference_set_of(project=project, pk=data[set_field])
    if chosen is None:
        raise ValidationError({set_field: "No such preference set in this project."})
    try:
        run = start(chosen, config_cls.from_dict(data["config"]))
    except RunConfigError as exc:
        raise ValidationError({"config": exc.errors}) from None
    except ValueError as exc:
        raise ValidationError({"config": str(exc)}) from None
    return Response(RunOutput(run).data, status=202)


class RunListApi(APIView):
    @extend_schema(responses=RunOutput(many=True))
    def get(self, request, slug: str):
        """The project's training runs, newest first."""
        project = _project(request, slug)
        return Response(RunOutput(runs_of(project=project), many=True).data)

    @extend_schema(request=RunInput, responses={202: RunOutput})
    def post(self, request, slug: str):
        """Queue a reward-model run on the `gpu` queue (engineers). The config and the set are
        checked now (400 with the field at fault); poll GET /api/runs/<id>/."""
        project = _project(request, slug, write=True)
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _queued_run(project, data.validated_data, "preference_set", RewardRunConfig, lambda chosen, config:
                           reward_run_create(project=project, preference_set=chosen, config=config, user=request.user))


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutput)
    def get(self, request, run_id: int):
        """A run as it stands: status, progress (step/total, loss, pairs/s, ETA), checkpoints, and
        its reward model once it succeeded."""
        return Response(RunOutput(_run_for(request, run_id)).data)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses=RunOutput)
    def post(self, request, run_id: int):
        """Cancel: a queued run at once, a running one at its next step (engineers)."""
        run = _run_for(request, run_id, write=True)
        try:
            run = run_cancel(run=run, user=request.user)
        except RunStateError as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(RunOutput(run).data)


class RunRetryApi(APIView):
    @extend_schema(request=None, responses={202: RunOutput})
    def post(self, request, run_id: int):
        """Start a failed run again as a new run (engineers): the same set and config, checked again;
        a reward-model run continues from the last checkpoint the failed one kept. 409 unless it failed."""
        run = _run_for(request, run_id, write=True)
        try:
            again = run_retry(run=run, user=request.user)
        except RunStateError as exc:
            return Response({"detail": str(exc)}, status=409)
        except RunConfigError as exc:
            raise ValidationError({"config": exc.errors}) from None
        return Response(RunOutput(again).data, status=202)


class RunMetricsApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("after", int, required=False, description="Only steps after this one.")],
                   responses=MetricOutput(many=True))
    def get(self, request, run_id: int):
        """The loss chart's points: [{step, loss, learning_rate, throughput, values}]."""
        run = _run_for(request, run_id)
        after = request.query_params.get("after", "")
        return Response(run_metrics(run=run, after=int(after) if after.isdigit() else -1))


class RunLogsApi(APIView):
    @extend_schema(responses=LogOutput(many=True))
    def get(self, request, run_id: int):
        """The run's log lines, oldest first."""
        return Response(run_logs(run=_run_for(request, run_id)))


def _reward_model_for(request, model_id: int, *, write: bool = False) -> RewardModel:
    reward_model = reward_model_by_id(pk=model_id)
    if reward_model is None:
        raise NotFound("No such reward model.")
    _project(request, reward_model.project.slug, write=write)
    return reward_model


class RewardModelListApi(APIView):
    @extend_schema(responses=RewardModelOutput(many=True))
    def get(self, request, slug: str):
        """The registry: every reward model of the project with its held-out evaluation and verdict."""
        project = _project(request, slug)
        return Response(RewardModelOutput(reward_models_of(project=project), many=True).data)


class RewardModelDetailApi(APIView):
    @extend_schema(responses=RewardModelOutput)
    def get(self, request, model_id: int):
        return Response(RewardModelOutput(_reward_model_for(request, model_id)).data)


class RewardModelSelectApi(APIView):
    @extend_schema(request=SelectInput, responses={200: SelectOutput, 409: OpenApiTypes.OBJECT})
    def post(self, request, model_id: int):
        """Choose a reward model for RL (engineers). A ready one: 200. One that failed its gate:
        409 with the failures, unless an `override_reason` is given, which is recorded."""
        reward_model = _reward_model_for(request, model_id, write=True)
        data = SelectInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            override = reward_model_select_for_rl(reward_model=reward_model, user=request.user,
                                                  override_reason=data.validated_data["override_reason"],
                                                  purpose=data.validated_data["purpose"])
        except NotReady as exc:
            return Response({"detail": str(exc), "failures": reward_model.failures}, status=409)
        return Response({"reward_model": reward_model.pk, "ready": reward_model.ready,
                         "override": override.pk if override else None})


class ReadinessApi(APIView):
    @extend_schema(responses=ReadinessInput)
    def get(self, request, slug: str):
        """The project's readiness minimums for reward models."""
        return Response(asdict(readiness_thresholds(project=_project(request, slug))))

    @extend_schema(request=ReadinessInput, responses=ReadinessInput)
    def put(self, request, slug: str):
        """Change the minimums (leads and engineers); later evaluations are judged by them."""
        project = _project(request, slug)
        if not (can_lead(user=request.user, project=project) or can_train(user=request.user, project=project)):
            raise PermissionDenied("Only leads and engineers set readiness minimums.")
        data = ReadinessInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(asdict(readiness_minimums_set(project=project, values=data.validated_data)))


# ---------------------------------------------------------------- policy runs (GRPO, PPO)


def _policy_run_for(request, run_id: int) -> Run:
    """A GRPO or PPO run, for leads and engineers (reading, and making labelling batches)."""
    run = _run_for(request, run_id)
    if run.kind not in RL_KINDS:
        raise NotFound("That run is not a policy run.")
    return run


class RLRunListApi(APIView):
    @extend_schema(request=RLRunInput, responses={202: RunOutput})
    def post(self, request, slug: str):
        """Queue a GRPO or PPO run on the `gpu` queue (engineers), or hand it to a Ray engine. The
        config, the prompt set and the reward model's readiness are checked now (400 with the
        field at fault; a reward model that is not ready needs override_reason)."""
        project = _project(request, slug, write=True)
        data = RLRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _queued_run(project, data.validated_data, "prompt_set", RLRunConfig, lambda chosen, config:
                           rl_run_create(project=project, prompt_set=chosen, config=config, user=request.user,
                                         override_reason=data.validated_data["override_reason"]))


class RunAlertsApi(APIView):
    @extend_schema(responses=AlertOutput(many=True))
    def get(self, request, run_id: int):
        """The reward-hacking monitors' alerts on a policy run, oldest first."""
        return Response(run_alerts(run=_policy_run_for(request, run_id)))


class RunSuiteApi(APIView):
    @extend_schema(responses=SuiteOutput(many=True))
    def get(self, request, run_id: int):
        """The behavioural suite: one table per checkpoint (step 0 is the starting policy)."""
        return Response(run_suite(run=_policy_run_for(request, run_id)))


class RunFeedbackApi(APIView):
    @extend_schema(responses=FeedbackBatchOutput(many=True))
    def get(self, request, run_id: int):
        """The labelling batches made from this run."""
        return Response(run_feedback_batches(run=_policy_run_for(request, run_id)))

    @extend_schema(request=FeedbackBatchInput, responses={201: FeedbackBatchOutput})
    def post(self, request, run_id: int):
        """Make a labelling batch (leads, engineers): the policy's answers against the reference's
        on an alert's prompts, or on a checkpoint's flagged suite prompts for one dimension.
        The items are ordinary comparisons, routed to annotators like any other."""
        run = _policy_run_for(request, run_id)
        data = FeedbackBatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        alert = None
        if values.get("alert") is not None:
            alert = alert_get(run=run, pk=values["alert"])
            if alert is None:
                raise ValidationError({"alert": "No such alert on this run."})
        elif values.get("step") is None or not values.get("dimension"):
            raise ValidationError({"alert": "Give an alert, or a checkpoint's step and a dimension."})
        try:
            batch = feedback_batch_create(run=run, user=request.user, alert=alert, step=values.get("step"),
                                          dimension=values.get("dimension", ""))
        except FeedbackError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"id": batch.pk, "alert_id": batch.alert_id, "step": batch.step, "dimension": batch.dimension,
                         "items": batch.items, "created_at": batch.created_at}, status=201)


class RunHumanSuiteApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, run_id: int):
        """The behavioural suite judged by people (leads, engineers): per dimension, the SFT
        baseline's and each checkpoint's rubric pass rate with its Wilson 95% interval, the paired
        difference against the baseline with the exact McNemar p-value, whether it got worse while
        the reward rose, and where the automatic suite disagrees."""
        return Response(human_suite_report(run=_policy_run_for(request, run_id)))

    @extend_schema(request=HumanSuiteInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, run_id: int):
        """Send a checkpoint's suite answers, and the SFT baseline's answers to the same prompts, to
        people as rubric evaluations (blind, mixed together). Once per step. Dimensions without a
        rubric in the spec are skipped."""
        run = _policy_run_for(request, run_id)
        data = HumanSuiteInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            sent = rubric_checkpoint_send(run=run, step=data.validated_data["step"],
                                          raters=data.validated_data.get("raters"), user=request.user)
        except HumanSuiteError as exc:
            raise ValidationError({"step": str(exc)}) from None
        return Response(sent, status=201)


class MonitorThresholdsApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        """The project's reward-hacking monitor thresholds, with each one's meaning."""
        project = _project(request, slug)
        from .monitors import MonitorThresholds

        return Response({"thresholds": monitor_thresholds(project=project).to_dict(), "help": MonitorThresholds.help()})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request, slug: str):
        """Set some thresholds (leads, engineers); the others keep their value."""
        project = _project(request, slug)  # leads and engineers
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "Send an object of thresholds."})
        try:
            thresholds = monitor_thresholds_set(project=project, values=dict(request.data))
        except ValueError as exc:
            raise ValidationError(exc.args[0]) from None
        return Response({"thresholds": thresholds.to_dict()})


# ---------------------------------------------------------------- AI judges


def _judge_project(request, slug: str):
    """Leads and engineers register and run judges; annotators get 403, non-members 404."""
    project = project_get_for_member(slug=slug, user=request.user)
    if not can_export(user=request.user, project=project):
        raise PermissionDenied("Only leads and engineers see and run AI judges.")
    return project


def _judge_for(request, judge_id: int) -> Judge:
    judge = judge_by_id(pk=judge_id)
    if judge is None:
        raise NotFound("No such judge.")
    _judge_project(request, judge.project.slug)
    return judge


class JudgeListApi(APIView):
    @extend_schema(responses=JudgeReportOutput(many=True))
    def get(self, request, slug: str):
        """The project's AI judges with their standing, agreement with people, pre-label overturn
        rate, bias flags and cost/latency line."""
        project = _judge_project(request, slug)
        return Response(JudgeReportOutput(judges_report(project=project), many=True).data)

    @extend_schema(request=JudgeInput, responses={201: JudgeOutput})
    def post(self, request, slug: str):
        """Register a judge (leads and engineers): a reward model of the project, a local causal LM
        directory, or an OpenAI-compatible endpoint (its key stays in the workers' environment)."""
        project = _judge_project(request, slug)
        data = JudgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        reward_model_id = values.pop("reward_model")
        reward_model = reward_model_by_id(pk=reward_model_id) if reward_model_id else None
        if reward_model_id and (reward_model is None or reward_model.project_id != project.pk):
            raise ValidationError({"reward_model": "No such reward model in this project."})
        try:
            judge = judge_create(project=project, created_by=request.user, reward_model=reward_model, **values)
        except ValidationFailed as exc:
            raise ValidationError(exc.field_errors) from None
        return Response(JudgeOutput(judge).data, status=201)


class JudgeDetailApi(APIView):
    @extend_schema(responses=JudgeReportOutput)
    def get(self, request, judge_id: int):
        judge = _judge_for(request, judge_id)
        [row] = [r for r in judges_report(project=judge.project) if r["judge"].pk == judge.pk]
        return Response(JudgeReportOutput(row).data)


class JudgeJobListApi(APIView):
    @extend_schema(responses=JudgeJobOutput(many=True))
    def get(self, request, judge_id: int):
        judge = _judge_for(request, judge_id)
        return Response(JudgeJobOutput([judge_job_progress(job=j) for j in judge_jobs_of(judge=judge)], many=True).data)

    @extend_schema(request=JudgeJobInput, responses={202: JudgeJobOutput})
    def post(self, request, judge_id: int):
        """Start a judge's work on a worker: its calibration round, pre-labels, tie-breaks or
        HyPER routing (an endpoint judge on the default queue, a model judge on the gpu queue)."""
        judge = _judge_for(request, judge_id)
        data = JudgeJobInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = judge_job_request(judge=judge, created_by=request.user, **data.validated_data)
        except ValidationFailed as exc:
            raise ValidationError(exc.field_errors) from None
        return Response(JudgeJobOutput(job).data, status=202)


class JudgeJobDetailApi(APIView):
    @extend_schema(responses=JudgeJobOutput)
    def get(self, request, job_id: int):
        job = judge_job_by_id(pk=job_id)
        if job is None:
            raise NotFound("No such judge job.")
        _judge_project(request, job.judge.project.slug)
        return Response(JudgeJobOutput(judge_job_progress(job=job)).data)


class JudgeRunListApi(APIView):
    @extend_schema(request=RunInput, responses={202: RunOutput})
    def post(self, request, slug: str):
        """Train a generative judge (engineers): TRL SFT of a local causal LM on the set's rm-r1
        export (the annotators' rationales as the evaluation), on the `gpu` queue; it is evaluated on
        the held-out split in both A/B orders and registered as a judge of the project. `config`:
        training.config.GenerativeJudgeConfig (base_model required). Poll GET /api/runs/<id>/."""
        project = _project(request, slug, write=True)
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _queued_run(project, data.validated_data, "preference_set", GenerativeJudgeConfig, lambda chosen, config:
                           generative_judge_run_create(project=project, preference_set=chosen, config=config,
                                                       user=request.user))


class RoutingRewardModelApi(APIView):
    @extend_schema(responses={200: ItemScoringOutput, 204: None})
    def get(self, request, slug: str):
        """The latest scoring of the open comparisons by a routing reward model (leads)."""
        project = _lead_only(request, slug)
        scoring = item_scoring_latest(project=project)
        return Response(ItemScoringOutput(scoring).data) if scoring else Response(status=204)

    @extend_schema(request=ItemScoringInput, responses={202: ItemScoringOutput})
    def post(self, request, slug: str):
        """Score every open live comparison with a reward model of the registry on a worker: its
        margin orders the queue for pairs nobody judged yet, and the pairs it cannot tell apart go to
        skill holders (training/services/item_scores.py)."""
        project = _lead_only(request, slug)
        data = ItemScoringInput(data=request.data)
        data.is_valid(raise_exception=True)
        reward_model = reward_model_by_id(pk=data.validated_data["reward_model"])
        try:
            scoring = item_scoring_request(project=project, reward_model=reward_model, created_by=request.user,
                                           mc_samples=data.validated_data["mc_samples"])
        except ValidationFailed as exc:
            raise ValidationError(exc.field_errors) from None
        return Response(ItemScoringOutput(scoring).data, status=202)


def _lead_only(request, slug: str):
    project = project_get_for_member(slug=slug, user=request.user)
    if not can_lead(user=request.user, project=project):
        raise PermissionDenied("Only leads set how work is routed.")
    return project
