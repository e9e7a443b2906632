from __future__ import annotations

from rest_framework import serializers

from annotation.models import Choice, FlawType, Project, Strength
from annotation.serializers import MessageOutput, ResponseOutput

from .explanations import explanation_for_author
from .models import AnalyticsPolicy, Anchor, AnchorRevision, CalibrationPolicy, StandingChange, StandingState
from .services.analytics import ANALYTICS_FIELDS
from .services.policy import POLICY_FIELDS


class QuestionOutput(serializers.Serializer):
    question = serializers.IntegerField()
    round = serializers.IntegerField()
    position = serializers.IntegerField()
    total = serializers.IntegerField()
    prompt = MessageOutput(many=True)
    left = ResponseOutput()
    right = ResponseOutput()


class FeedbackOutput(serializers.Serializer):
    correct = serializers.BooleanField()
    expert_choice = serializers.CharField(help_text="left | right | tie | both_bad, as you saw it")
    expert_strength = serializers.CharField()
    expert_dimensions = serializers.DictField(child=serializers.CharField())
    your_choice = serializers.CharField(help_text="left | right | tie | both_bad: your answer, as you gave it")
    your_strength = serializers.CharField()
    explanation = serializers.CharField(help_text="Names each response by the letter and side you saw.")
    clear_cut = serializers.BooleanField()


class AnswerOutput(serializers.Serializer):
    feedback = FeedbackOutput()
    round = serializers.IntegerField()
    finished = serializers.BooleanField()
    state = serializers.CharField(help_text="Your standing after this answer.")


class CalibrationStatusOutput(serializers.Serializer):
    state = serializers.CharField()
    state_label = serializers.CharField()
    reason = serializers.CharField()
    round = serializers.DictField(allow_null=True)
    last_failed_round = serializers.DictField(allow_null=True)
    missed = serializers.ListField(child=serializers.DictField())


class AnalyticsPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalyticsPolicy
        fields = list(ANALYTICS_FIELDS)


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = CalibrationPolicy
        fields = list(POLICY_FIELDS)


class RoutingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["dynamic_k", "k_min", "stop_confidence", "overlap"]
        read_only_fields = ["overlap"]


class ExpertInput(serializers.Serializer):
    # The model's choice sets (labels included) so the schema names each enum once (StrengthEnum,
    # CanonicalChoiceEnum); a blank strength is allow_blank's, not a choice.
    choice = serializers.ChoiceField(choices=Choice.choices, help_text="Canonical: a = response_a, b = response_b.")
    strength = serializers.ChoiceField(choices=Strength.choices, required=False, default="", allow_blank=True)
    dimensions = serializers.DictField(child=serializers.ChoiceField(choices=Choice.values), required=False, default=dict)
    explanation = serializers.CharField(max_length=20_000)
    clear_cut = serializers.BooleanField(default=True)
    flaw_tags = serializers.ListField(
        child=serializers.ChoiceField(choices=FlawType.choices), required=False, default=list, max_length=len(FlawType.values),
        help_text="Flaws of the response the expert rejected, e.g. sycophantic_agreement (it agrees with a mistaken "
        "belief the user stated): analytics then knows that anchor's sycophantic side for certain.")


class AnchorCreateInput(ExpertInput):
    item = serializers.IntegerField()
    in_calibration_set = serializers.BooleanField(default=False)


class AnchorUpdateInput(serializers.Serializer):
    expert = ExpertInput(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    in_calibration_set = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)


class AuthorExplanation(serializers.CharField):
    """An explanation in authoring terms: Response A = the item's first response (stored form:
    stable names, calibration/explanations.py)."""

    def to_representation(self, value):
        return explanation_for_author(value)


class AnchorRevisionOutput(serializers.ModelSerializer):
    replaced_by = serializers.CharField(source="replaced_by.username", allow_null=True, default=None)
    explanation = AuthorExplanation()

    class Meta:
        model = AnchorRevision
        fields = ["revision", "expert_choice", "expert_strength", "expert_dimension_choices", "explanation",
                  "clear_cut", "flaw_tags", "reason", "replaced_by", "replaced_at"]


class AnchorOutput(serializers.ModelSerializer):
    explanation = AuthorExplanation()

    class Meta:
        model = Anchor
        fields = ["id", "item", "expert_choice", "expert_strength", "expert_dimension_choices", "explanation",
                  "clear_cut", "flaw_tags", "in_calibration_set", "active", "revision", "created_at", "updated_at"]


class AnchorAgreementOutput(serializers.Serializer):
    anchor = AnchorOutput()
    prompt = serializers.CharField()
    domain = serializers.CharField()
    answers = serializers.IntegerField()
    agreement = serializers.FloatField(allow_null=True)
    wilson_low = serializers.FloatField()
    wilson_high = serializers.FloatField()
    distribution = serializers.DictField(child=serializers.IntegerField())
    suspect = serializers.BooleanField(help_text="Most annotators disagree with the expert: check the anchor.")


class AnchorImportInput(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL: an item per line plus an 'expert' object.")


class CalibrationSetInput(serializers.Serializer):
    size = serializers.IntegerField(min_value=1, max_value=200, required=False)


class StandingChangeOutput(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)

    class Meta:
        model = StandingChange
        fields = ["id", "annotator", "from_state", "to_state", "cause", "reason", "evidence", "actor",
                  "created_at", "acknowledged_at"]


class StandingRowOutput(serializers.Serializer):
    annotator = serializers.CharField(source="annotator.username")
    state = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)
    answered = serializers.IntegerField(help_text="Clear-cut anchors answered (calibration and hidden).")
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True)
    wilson_low = serializers.FloatField()
    wilson_high = serializers.FloatField()
    cusum = serializers.FloatField()
    hidden_answered = serializers.IntegerField()
    last_change = StandingChangeOutput(allow_null=True)


class OverrideInput(serializers.Serializer):
    state = serializers.ChoiceField(choices=StandingState.values)
    reason = serializers.CharField(max_length=2000)


class RecalibrateInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CustomCueInput(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    keywords = serializers.ListField(child=serializers.CharField(max_length=80), required=False, max_length=50,
                                     help_text="Words or phrases (whole words, any case).")
    pattern = serializers.CharField(max_length=300, required=False, help_text="A regular expression instead.")
    save = serializers.BooleanField(default=True, help_text="Keep it for every later computation.")
