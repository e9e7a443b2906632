"""Request and response shapes of training's API (training/api.py)."""
from __future__ import annotations

from rest_framework import serializers

from rewards.models import RewardModel

from .models import ItemScoring, Judge, JudgeJob, JudgeKind, JudgeUse, Run


class RunOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug")
    preference_set_version = serializers.IntegerField(source="preference_set.version", allow_null=True, default=None)
    percent = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Run
        fields = ["id", "project", "kind", "status", "phase", "percent", "step", "total_steps", "loss", "throughput",
                  "eta_seconds", "device", "worker", "cancel_requested", "error", "config", "preference_set",
                  "preference_set_version", "checkpoints", "output_dir", "reward_model", "summary", "external",
                  "created_by", "created_at", "started_at", "finished_at", "heartbeat_at"]


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


class SelectInput(serializers.Serializer):
    override_reason = serializers.CharField(required=False, allow_blank=True, default="")
    purpose = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class ReadinessInput(serializers.Serializer):
    overall = serializers.FloatField(min_value=0, max_value=1, required=False)
    per_category = serializers.FloatField(min_value=0, max_value=1, required=False)
    category_min_pairs = serializers.IntegerField(min_value=1, required=False)
    length_controlled = serializers.FloatField(min_value=0, max_value=1, required=False)
    hacks_fixed = serializers.FloatField(min_value=0, max_value=1, required=False, help_text=(
        "Share of the project's confirmed red-team hacks a model must rank below their reference (0: not required)."))


class RLRunInput(serializers.Serializer):
    prompt_set = serializers.IntegerField(help_text="The frozen preference set whose prompts are trained on (train "
                                                    "split) and make the behavioural suite (held-out split).")
    config = serializers.DictField(help_text="training.config.RLRunConfig fields; policy_path is required.")
    override_reason = serializers.CharField(required=False, allow_blank=True, default="", help_text=(
        "Required to use a reward model that is not ready; recorded with your name."))


class AlertOutput(serializers.Serializer):
    id = serializers.IntegerField()
    step = serializers.IntegerField()
    kind = serializers.CharField()
    message = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    prompt_ids = serializers.ListField(child=serializers.IntegerField())
    batches = serializers.ListField(child=serializers.IntegerField(), help_text="Feedback batches made from it.")
    samples = serializers.ListField(child=serializers.DictField(), help_text=(
        "The policy's answers that raised it, with the reference's: [{prompt_id, prompt, completion, reward, "
        "reference}]."))
    at = serializers.DateTimeField()


class SuiteRowOutput(serializers.Serializer):
    dimension = serializers.CharField()
    prompts = serializers.IntegerField()
    verified = serializers.IntegerField()
    verifier_pass = serializers.FloatField(allow_null=True)
    mean_length = serializers.FloatField()
    hedging = serializers.FloatField()
    list_rate = serializers.FloatField()
    weak = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    flagged = serializers.ListField(child=serializers.IntegerField())
    batch_made = serializers.BooleanField()


class SuiteOutput(serializers.Serializer):
    step = serializers.IntegerField(help_text="0 is the starting policy.")
    checkpoint = serializers.CharField()
    rows = SuiteRowOutput(many=True)


class FeedbackBatchInput(serializers.Serializer):
    alert = serializers.IntegerField(required=False, help_text="An alert's id; or step and dimension.")
    step = serializers.IntegerField(required=False, help_text="A checkpoint's step.")
    dimension = serializers.CharField(required=False, allow_blank=True, default="")


class HumanSuiteInput(serializers.Serializer):
    step = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="A checkpoint's step.")
    raters = serializers.IntegerField(required=False, min_value=1, max_value=5,
                                      help_text="People per answer; default: the run's rubric_raters (at least 1).")


class FeedbackBatchOutput(serializers.Serializer):
    id = serializers.IntegerField()
    alert_id = serializers.IntegerField(allow_null=True)
    step = serializers.IntegerField()
    dimension = serializers.CharField()
    items = serializers.ListField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()


# ---------------------------------------------------------------- AI judges


class JudgeInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=JudgeKind.choices)
    reward_model = serializers.IntegerField(required=False, allow_null=True, default=None,
                                            help_text="kind reward_model: a reward model of this project.")
    model_dir = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    endpoint_url = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    endpoint_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    api_key_env = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                                        help_text="The name of the workers' environment variable holding the key.")
    sure_at = serializers.FloatField(required=False, default=0.8)
    cost_per_call = serializers.FloatField(required=False, default=0.0)
    cost_per_1k_tokens = serializers.FloatField(required=False, default=0.0)
    timeout_seconds = serializers.IntegerField(required=False, default=30)


class JudgeOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Judge
        fields = ["id", "name", "kind", "username", "reward_model", "model_dir", "endpoint_url", "endpoint_model",
                  "api_key_env", "sure_at", "cost_per_call", "cost_per_1k_tokens", "timeout_seconds", "active",
                  "evaluation", "source_run_id", "created_at"]


class JudgeReportOutput(serializers.Serializer):
    judge = JudgeOutput()
    standing = serializers.CharField(help_text="Its standing from anchors, as a person's.")
    anchors_answered = serializers.IntegerField()
    anchor_accuracy = serializers.FloatField(allow_null=True)
    labels = serializers.IntegerField()
    agreement = serializers.DictField(help_text="Against people's majority: n, rate, low, high (Wilson), kappa.")
    overturn = serializers.DictField(help_text=(
        "Pre-labelled items whose people's majority went the other way: n, items, rate, low, high (Wilson, over "
        "items); judgments, judgment_rate (people's single judgments against the pre-label)."))
    flags = serializers.ListField(child=serializers.CharField(), help_text="Its bias flags from the latest analytics.")
    calls = serializers.IntegerField()
    failed = serializers.IntegerField()
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField()
    cost = serializers.FloatField()
    cost_per_label = serializers.FloatField(allow_null=True)


class JudgeJobInput(serializers.Serializer):
    use = serializers.ChoiceField(choices=JudgeUse.choices)
    limit = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=100_000)


class JudgeJobOutput(serializers.ModelSerializer):
    class Meta:
        model = JudgeJob
        fields = ["id", "judge", "use", "limit", "status", "phase", "percent", "done", "total", "outcome", "error",
                  "created_at", "started_at", "finished_at"]


class ItemScoringInput(serializers.Serializer):
    reward_model = serializers.IntegerField(help_text="A reward model of this project (the registry).")
    mc_samples = serializers.IntegerField(required=False, default=8, min_value=0, max_value=64,
                                          help_text="MC-dropout passes for the margin's spread (0: margin only).")


class ItemScoringOutput(serializers.ModelSerializer):
    class Meta:
        model = ItemScoring
        fields = ["id", "reward_model", "mc_samples", "status", "phase", "percent", "outcome", "error", "created_at",
                  "started_at", "finished_at"]
