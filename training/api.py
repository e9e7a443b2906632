"""REST: training runs (start, watch, cancel), the reward-model registry, readiness minimums.

Leads and engineers read runs and the registry; engineers start and cancel runs and choose reward
models for RL; annotators see none of it (403), non-members get 404.
"""
from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.permissions import can_export, can_lead, can_train
from annotation.selectors import project_get_for_member
from rewards.models import RewardModel
from rewards.selectors import preference_set_of, reward_model_by_id, reward_models_of
from rewards.services.registry import NotReady, readiness_minimums_set, readiness_thresholds, reward_model_select_for_rl

from .config import RewardRunConfig
from .models import Run
from .selectors import run_by_id, run_logs, run_metrics, runs_of
from .services.reward_runs import RunConfigError, reward_run_create
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


class RunOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug")
    preference_set_version = serializers.IntegerField(source="preference_set.version", allow_null=True, default=None)
    percent = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Run
        fields = ["id", "project", "kind", "status", "phase", "percent", "step", "total_steps", "loss", "throughput",
                  "eta_seconds", "device", "worker", "cancel_requested", "error", "config", "preference_set",
                  "preference_set_version", "checkpoints", "output_dir", "reward_model", "created_by", "created_at",
                  "started_at", "finished_at", "heartbeat_at"]


class RunInput(serializers.Serializer):
    preference_set = serializers.IntegerField(help_text="The frozen set's id.")
    config = serializers.DictField(help_text="training.config.RewardRunConfig fields; base_model is required.")


class RewardModelOutput(serializers.ModelSerializer):
    preference_set_version = serializers.IntegerField(source="preference_set.version")

    class Meta:
        model = RewardModel
        fields = ["id", "name", "preference_set", "preference_set_version", "base_model", "path", "ready", "failures",
                  "thresholds", "evaluation", "config", "created_at"]


class MetricOutput(serializers.Serializer):
    step = serializers.IntegerField()
    loss = serializers.FloatField(allow_null=True)
    learning_rate = serializers.FloatField(allow_null=True)
    throughput = serializers.FloatField(allow_null=True, help_text="Training pairs per second.")
    values = serializers.DictField(help_text="Anything else the trainer logged (accuracy, margin, grad norm...).")


class LogOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.CharField()
    message = serializers.CharField()


class SelectOutput(serializers.Serializer):
    reward_model = serializers.IntegerField()
    ready = serializers.BooleanField()
    override = serializers.IntegerField(allow_null=True, help_text="The recorded override, for a model not ready.")


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
        preference_set = preference_set_of(project=project, pk=data.validated_data["preference_set"])
        if preference_set is None:
            raise ValidationError({"preference_set": "No such preference set in this project."})
        try:
            config = RewardRunConfig.from_dict(data.validated_data["config"])
            run = reward_run_create(project=project, preference_set=preference_set, config=config, user=request.user)
        except RunConfigError as exc:
            raise ValidationError({"config": exc.errors}) from None
        except ValueError as exc:
            raise ValidationError({"config": str(exc)}) from None
        return Response(RunOutput(run).data, status=202)


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


class SelectInput(serializers.Serializer):
    override_reason = serializers.CharField(required=False, allow_blank=True, default="")
    purpose = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


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


class ReadinessInput(serializers.Serializer):
    overall = serializers.FloatField(min_value=0, max_value=1, required=False)
    per_category = serializers.FloatField(min_value=0, max_value=1, required=False)
    category_min_pairs = serializers.IntegerField(min_value=1, required=False)
    length_controlled = serializers.FloatField(min_value=0, max_value=1, required=False)


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
