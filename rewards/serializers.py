"""Request and response shapes of rewards' API (rewards/api.py)."""
from __future__ import annotations

from rest_framework import serializers

from calibration.models import StandingState

from .curation import AGGREGATIONS as CURATION_AGGREGATIONS
from .formats import TAGS
from .models import FreezeRequest, PreferenceSet


class PolicyInput(serializers.Serializer):
    """A curation policy; every field optional (the defaults: active annotators, Dawid-Skene)."""

    standings = serializers.ListField(child=serializers.ChoiceField(choices=StandingState.choices), required=False)
    aggregation = serializers.ChoiceField(choices=CURATION_AGGREGATIONS, required=False)
    min_judgments = serializers.IntegerField(min_value=1, required=False)
    min_confidence = serializers.FloatField(min_value=0, max_value=1, required=False)
    tags = serializers.ListField(child=serializers.ChoiceField(choices=TAGS), required=False)
    margins = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=10), required=False)
    test_fraction = serializers.FloatField(min_value=0, max_value=0.99, required=False)
    seed = serializers.IntegerField(required=False)
    dedupe = serializers.BooleanField(required=False)
    per_domain_cap = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    domain_targets = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1), required=False)
    tag_targets = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1), required=False)
    hard_share_min = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    chosen_shorter_share = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)


class FreezeInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    policy = PolicyInput(required=False, default=dict)


class PreferenceSetOutput(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = PreferenceSet
        fields = ["id", "project", "version", "name", "content_hash", "policy", "counts", "coverage", "spec_versions",
                  "created_by", "created_at"]


class FreezeOutput(serializers.ModelSerializer):
    class Meta:
        model = FreezeRequest
        fields = ["id", "status", "phase", "percent", "error", "preference_set", "created_at", "started_at",
                  "heartbeat_at", "finished_at"]
