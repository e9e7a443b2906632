"""Preference sets: frozen, versioned, hashed training sets carved from a project's judgments by a
curation policy (rewards/curation.py). Export formats live in formats.py.

A frozen set never changes: its rows refuse updates and deletes here, the admin shows it read-only
and the API has no way to edit it. A new policy or new data makes a new version.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import ImportStatus, Project, Prompt, Response


class FrozenSetError(Exception):
    """Someone tried to change a frozen preference set."""


class FrozenQuerySet(models.QuerySet):
    """Bulk paths refuse too: no `.update()`, no `.delete()` (the admin's bulk delete uses it)."""

    def update(self, **kwargs):
        raise FrozenSetError("A frozen preference set cannot change; freeze a new version instead.")

    def delete(self):
        raise FrozenSetError("A frozen preference set cannot be deleted.")


class Frozen(models.Model):
    """Rows written once, when their set is frozen, and never again."""

    objects = FrozenQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise FrozenSetError("A frozen preference set cannot change; freeze a new version instead.")
        # Insert only: a new object given an existing pk must not quietly UPDATE that row.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FrozenSetError("A frozen preference set cannot be deleted.")


class PreferenceSet(Frozen):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="preference_sets")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    policy = models.JSONField(help_text="The curation policy, as rewards.curation.CurationPolicy.to_dict().")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the policy and every pair.")
    counts = models.JSONField(default=dict, help_text="Pairs by split, tag and domain; judgments seen; left out.")
    spec_versions = models.JSONField(default=list, help_text="Behaviour-spec versions the judgments span.")
    coverage = models.JSONField(default=dict, help_text="rewards.curation.coverage_report: shares, histograms, warnings.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="preference_set_version_unique")]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project.slug} v{self.version}"


class SetPair(Frozen):
    """One pair of a frozen set, with its texts copied in: later edits elsewhere never reach it."""

    preference_set = models.ForeignKey(PreferenceSet, on_delete=models.PROTECT, related_name="pairs")
    position = models.PositiveIntegerField()
    key = models.CharField(
        max_length=64, help_text="Where the pair comes from, the same across versions: item:<id> (aggregated), "
        "judgment:<id>, derived:<id>, ranking:<judgment>:<better>:<worse> or bt:<prompt>:<low>:<high>.")
    # Provenance ids, kept as they were: deleting a prompt later neither changes the frozen row
    # nor is refused by it (no database constraint, nothing done on delete).
    prompt = models.ForeignKey(Prompt, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    chosen_response = models.ForeignKey(Response, null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                        related_name="+")
    rejected_response = models.ForeignKey(Response, null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                          related_name="+")
    messages = models.JSONField()
    prompt_text = models.TextField(
        default="", help_text="The prompt as one string (rewards.formats.prompt_as_text), kept so the "
        "database can write the standard TRL format itself (rewards/services/sets.py: set_jsonl).")
    chosen = models.TextField()
    rejected = models.TextField()
    strength = models.CharField(max_length=8, blank=True)
    margin = models.FloatField()
    tag = models.CharField(max_length=16)
    flaw_type = models.CharField(max_length=32, blank=True)
    domain = models.CharField(max_length=64, blank=True)
    difficulty = models.CharField(max_length=16, blank=True)
    ground_truth = models.TextField(null=True, blank=True, help_text="The prompt's verifiable answer, if any.")
    rationales = models.JSONField(
        default=list, blank=True,
        help_text="The annotators' rationales behind this pair (the winners', for an aggregated one).")
    confidence = models.FloatField(help_text="Aggregated confidence (posterior or vote share); 1 for authored pairs.")
    votes = models.PositiveIntegerField(default=1)
    split = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["preference_set", "position"], name="set_pair_position_unique"),
            models.UniqueConstraint(fields=["preference_set", "key"], name="set_pair_key_unique"),
        ]
        ordering = ["preference_set", "position"]

    def content(self) -> dict:
        """What the content hash and the version diff compare."""
        return {
            "key": self.key, "messages": self.messages, "chosen": self.chosen, "rejected": self.rejected,
            "margin": self.margin, "tag": self.tag, "flaw_type": self.flaw_type, "domain": self.domain,
            "difficulty": self.difficulty, "split": self.split, "ground_truth": self.ground_truth,
            "rationales": self.rationales,
        }


# The same four states as imports and analytics snapshots.
FreezeStatus = ImportStatus


class FreezeRequest(models.Model):
    """A freeze asked for from the page, done by a worker: its progress, and its set or why not."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="freeze_requests")
    policy = models.JSONField()
    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=FreezeStatus.choices, default=FreezeStatus.QUEUED)
    phase = models.CharField(max_length=64, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The last progress report.")
    preference_set = models.ForeignKey(PreferenceSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)


# ---------------------------------------------------------------- reward-model registry


class RewardModel(models.Model):
    """A trained reward model in the registry: its weights, what it learned from, and how it did on
    its set's held-out split. Only a ready one drives RL without a recorded override."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reward_models")
    preference_set = models.ForeignKey(PreferenceSet, on_delete=models.PROTECT, related_name="reward_models")
    name = models.CharField(max_length=200)
    base_model = models.CharField(max_length=500, help_text="The backbone it was fine-tuned from (a local path).")
    path = models.CharField(max_length=500, help_text="The saved model directory (loads with from_pretrained).")
    config = models.JSONField(default=dict, help_text="The training config, as training.config.RewardRunConfig.")
    evaluation = models.JSONField(default=dict, help_text="rewards.evaluation.Report on the held-out split.")
    thresholds = models.JSONField(default=dict, help_text="The readiness minimums it was judged by.")
    ready = models.BooleanField(default=False)
    failures = models.JSONField(default=list, blank=True, help_text="Each minimum it missed, in words.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-created_at"]

    def __str__(self) -> str:
        return self.name


class ReadinessOverride(models.Model):
    """Someone chose a reward model that is not ready for RL anyway: who, when, why."""

    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()
    purpose = models.CharField(max_length=200, blank=True, help_text="What it was selected for (e.g. a run).")
    failures = models.JSONField(default=list, help_text="The minimums it missed when it was overridden.")
    created_at = models.DateTimeField(auto_now_add=True)

