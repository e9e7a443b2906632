"""Calibration: expert anchors, onboarding rounds, hidden gold results and annotator standing.

An anchor is an ordinary labelling item (annotation.Item) held out of the live queue, plus the
expert's answer. Annotators meet anchors two ways:
- in a calibration round (onboarding or retraining): openly, with the expert's answer shown after
  each answer;
- hidden in the live queue: served through the same lease machinery as live items, so nothing an
  annotator's browser receives tells them apart.
Every answer on an anchor becomes an AnchorResult; results on clear-cut anchors move the
annotator's Standing, and every move is kept in StandingChange.
"""
from __future__ import annotations

import math

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from annotation.models import Choice, ImportStatus, Item, Judgment, Project, Side, Strength


class CalibrationPolicy(models.Model):
    """A project's calibration settings (created with defaults the first time they are read)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="calibration_policy")
    disagreement_threshold = models.FloatField(
        default=0.25,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Largest share of clear-cut anchors an annotator may get wrong and still pass (0-1).",
    )
    calibration_size = models.PositiveSmallIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text="Anchors in the calibration set (15-30 recommended).",
    )
    hidden_rate = models.FloatField(
        default=0.10,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of live requests answered with a hidden anchor (0.1 = 1 in 10).",
    )
    reask_rate = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.3)],
        help_text="Share of an annotator's comparisons asked again later with the sides swapped, to "
        "measure their self-consistency (0.05 = 1 in 20; never counted toward an item's k).",
    )
    show_hidden_feedback = models.BooleanField(
        default=False, help_text="Show the expert's answer after a hidden anchor is answered."
    )
    window_size = models.PositiveSmallIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Rolling window: the last N clear-cut hidden anchors judge an active annotator.",
    )
    window_min = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Fewest hidden anchors in the window before it can move anyone.",
    )
    cusum_p0 = models.FloatField(
        default=0.10,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.999)],
        help_text="CUSUM: anchor error rate of an annotator in control.",
    )
    cusum_p1 = models.FloatField(
        default=0.35,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.999)],
        help_text="CUSUM: error rate the alarm is tuned to catch quickly (above p0).",
    )
    cusum_h = models.FloatField(
        # With p0 0.10 / p1 0.35, h = 4 gives an average run of about 600 anchors before a false
        # alarm at a 10% error rate and about 16 to catch a 35% one (simulated; see DESIGN.md).
        default=4.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(100.0)],
        help_text="CUSUM: the alarm sounds when the statistic reaches h.",
    )
    exclude_after_failed_rounds = models.PositiveSmallIntegerField(
        default=3, help_text="Failed calibration rounds after which an annotator is excluded (0: never)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.cusum_p1 <= self.cusum_p0:
            raise ValidationError({"cusum_p1": "p1 must be above p0."})
        if self.window_min > self.window_size:
            raise ValidationError({"window_min": "The minimum cannot exceed the window size."})


class Anchor(models.Model):
    """An item with the expert's answer (in canonical a/b terms), held out of the live queue."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="anchors")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="anchor")
    expert_choice = models.CharField(max_length=16, choices=Choice.choices)
    expert_strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    expert_dimension_choices = models.JSONField(default=dict, blank=True)
    explanation = models.TextField(help_text="Why the expert answer is right; shown as feedback.")
    clear_cut = models.BooleanField(
        default=True, help_text="Only clear-cut anchors count towards passing and standing."
    )
    in_calibration_set = models.BooleanField(default=False)
    flaw_tags = models.JSONField(
        default=list, blank=True,
        help_text="Flaws of the response the expert rejected (annotation.models.FlawType values), e.g. "
        "sycophantic_agreement: it agrees with a mistaken belief the user stated. Analytics reads a "
        "tagged anchor's sides from the tag instead of from a detector.",
    )
    active = models.BooleanField(default=True, help_text="Retired anchors are no longer served.")
    revision = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "active", "in_calibration_set"], name="anchor_set_idx")]


class AnchorRevision(models.Model):
    """The expert answer as it was before an edit."""

    anchor = models.ForeignKey(Anchor, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    expert_choice = models.CharField(max_length=16, choices=Choice.choices)
    expert_strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    expert_dimension_choices = models.JSONField(default=dict, blank=True)
    explanation = models.TextField()
    clear_cut = models.BooleanField()
    flaw_tags = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True, help_text="Why the edit replaced this version.")
    replaced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["anchor", "revision"], name="anchor_revision_unique")
        ]


class StandingState(models.TextChoices):
    CALIBRATING = "calibrating", "Calibrating"
    ACTIVE = "active", "Active"
    NEEDS_RETRAINING = "needs_retraining", "Needs retraining"
    EXCLUDED = "excluded", "Excluded"


class Standing(models.Model):
    """Where an annotator stands in a project. Only `active` annotators receive live items."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="standings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="standings")
    state = models.CharField(max_length=20, choices=StandingState.choices)
    since = models.DateTimeField(
        help_text="When the current state began; the rolling window and CUSUM look only after it."
    )
    reason = models.TextField(blank=True)
    cusum = models.FloatField(default=0.0, help_text="Bernoulli CUSUM statistic on hidden anchor errors.")
    failed_rounds = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="standing_unique")
        ]


class StandingChange(models.Model):
    """The audit trail: every change of standing, what caused it and who (null: automatic)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="standing_changes")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    from_state = models.CharField(max_length=20, choices=StandingState.choices, blank=True)
    to_state = models.CharField(max_length=20, choices=StandingState.choices)
    cause = models.CharField(
        max_length=24,
        help_text="joined | round_passed | round_failed | window | cusum | override | recalibration",
    )
    reason = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["project", "annotator", "-created_at"], name="standing_change_idx")]
        ordering = ["-created_at", "-id"]


class RoundStatus(models.TextChoices):
    OPEN = "open", "Open"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class CalibrationRound(models.Model):
    """One pass through the calibration set, with feedback after every answer."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="calibration_rounds")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=12, choices=RoundStatus.choices, default=RoundStatus.OPEN)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    clear_cut_answered = models.PositiveSmallIntegerField(default=0)
    clear_cut_wrong = models.PositiveSmallIntegerField(default=0)
    threshold = models.FloatField(null=True, blank=True, help_text="The threshold the round was judged by.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator", "number"], name="round_number_unique"),
            # One open round per annotator per project.
            models.UniqueConstraint(
                fields=["project", "annotator"], condition=Q(status="open"), name="round_one_open"
            ),
        ]

    @property
    def disagreement(self) -> float | None:
        return self.clear_cut_wrong / self.clear_cut_answered if self.clear_cut_answered else None


class CalibrationQuestion(models.Model):
    round = models.ForeignKey(CalibrationRound, on_delete=models.CASCADE, related_name="questions")
    anchor = models.ForeignKey(Anchor, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "anchor"], name="question_once_per_round"),
            models.UniqueConstraint(fields=["round", "position"], name="question_position_unique"),
        ]
        ordering = ["round", "position"]


class ResultContext(models.TextChoices):
    CALIBRATION = "calibration", "Calibration round"
    HIDDEN = "hidden", "Hidden in live work"


class AnchorResult(models.Model):
    """One annotator's first answer on one anchor, scored against the expert answer of the time."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="anchor_results")
    anchor = models.ForeignKey(Anchor, on_delete=models.CASCADE, related_name="results")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    context = models.CharField(max_length=12, choices=ResultContext.choices)
    question = models.OneToOneField(
        CalibrationQuestion, null=True, blank=True, on_delete=models.CASCADE, related_name="result"
    )
    judgment = models.OneToOneField(
        Judgment, null=True, blank=True, on_delete=models.CASCADE, related_name="anchor_result"
    )
    choice = models.CharField(max_length=16, choices=Choice.choices)
    strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    dimension_choices = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    correct = models.BooleanField(help_text="Choice equals the expert choice (rescored when the anchor is edited).")
    clear_cut = models.BooleanField(help_text="Whether the anchor was clear-cut (rescored on edit).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "annotator", "created_at"], name="anchor_result_mine_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(question__isnull=False) | Q(judgment__isnull=False), name="result_has_source"
            )
        ]


class AnalyticsPolicy(models.Model):
    """A project's thresholds for bias flags and its dataset-health targets."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="analytics_policy")
    custom_cues = models.JSONField(
        default=list, blank=True,
        help_text="Cues leads defined for bias discovery: [{name, keywords: [...]} or {name, pattern}] "
                  "(calibration/services/custom_cues.py).",
    )
    length_gap_chars = models.PositiveIntegerField(
        default=30, help_text="Length bias looks only at pairs whose lengths differ by more than this (characters)."
    )
    bias_margin = models.FloatField(
        default=0.15, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Length, confidence and formatting flags: how far above the pool's or the experts' rate "
                  "an annotator's rate must be (0.15 = 15 points).",
    )
    position_margin = models.FloatField(
        default=0.10, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Position flag: how far from 50% the share of left choices must be.",
    )
    significance = models.FloatField(
        default=0.01, validators=[MinValueValidator(1e-6), MaxValueValidator(0.5)],
        help_text="A flag also needs its test's p-value below this.",
    )
    min_judgments = models.PositiveIntegerField(
        default=20, validators=[MinValueValidator(1)],
        help_text="Fewest relevant judgments before any flag can be raised.",
    )
    assertive_gap = models.FloatField(
        default=1.0, validators=[MinValueValidator(0.0)],
        help_text="One response counts as more assertive when its boosters minus hedges per 100 words "
                  "exceed the other's by this much.",
    )
    reading_chars_per_second = models.FloatField(
        default=50.0, validators=[MinValueValidator(1.0)],
        help_text="Fastest plausible reading pace: a judgment quicker than reading the prompt and both "
                  "responses at this pace is too fast.",
    )
    fast_share = models.FloatField(
        default=0.20, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Speed flag: share of an annotator's judgments that are too fast.",
    )
    contested_disagreement = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="An item is contested when at least this share of its annotator pairs disagree.",
    )
    hard_share_min = models.FloatField(
        default=0.20, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Target share of hard cases: lower bound.",
    )
    hard_share_max = models.FloatField(
        default=0.30, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Target share of hard cases: upper bound.",
    )
    domain_targets = models.JSONField(
        default=dict, blank=True,
        help_text='Target mix of domains, e.g. {"coding": 0.3, "medical": 0.2}. Empty: no target.',
    )
    difficulty_targets = models.JSONField(
        default=dict, blank=True,
        help_text='Target mix of difficulties, e.g. {"easy": 0.3, "medium": 0.45, "hard": 0.25}.',
    )
    time_window_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(366)],
        help_text="Width of the windows for agreement over time (days).",
    )
    bootstrap_samples = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(20), MaxValueValidator(5000)],
        help_text="Bootstrap resamples behind every confidence interval.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors = {}
        for field in self._meta.get_fields():
            value = getattr(self, field.name, None) if isinstance(field, models.FloatField) else None
            if isinstance(value, float) and not math.isfinite(value):
                errors[field.name] = "Give a finite number."
        low, high = self.hard_share_min, self.hard_share_max
        # clean() runs even when a field failed its own checks: compare only real numbers.
        if isinstance(low, float) and isinstance(high, float) and not errors and high < low:
            errors["hard_share_max"] = "The upper bound cannot be below the lower bound."
        for name in ("domain_targets", "difficulty_targets"):
            targets = getattr(self, name)
            if not isinstance(targets, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and 0 <= v <= 1 for k, v in targets.items()
            ):
                errors[name] = "Give an object of name: share, each share between 0 and 1."
            elif sum(targets.values()) > 1.0001:
                errors[name] = "The shares add up to more than 1."
        if errors:
            raise ValidationError(errors)


# Background computations share the import jobs' status vocabulary.
SnapshotStatus = ImportStatus


class AnalyticsSnapshot(models.Model):
    """The dashboard's numbers for a project, computed in the background and read from here."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="analytics_snapshots")
    status = models.CharField(max_length=16, choices=SnapshotStatus.choices, default=SnapshotStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The worker's last sign of life (or when a queued one was last sent).")
    phase = models.CharField(max_length=32, blank=True, help_text="What the computation is doing now.")
    percent = models.PositiveSmallIntegerField(default=0)
    judgments_seen = models.PositiveIntegerField(default=0, help_text="Judgments in the project when it ran.")
    last_judgment_at = models.DateTimeField(null=True, blank=True)
    last_judgment_id = models.BigIntegerField(
        default=0, help_text="Highest judgment id seen: newer ones are counted cheaply by the (project, id) index."
    )
    payload = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-requested_at"], name="snapshot_latest_idx")]


class ProposalStatus(models.TextChoices):
    OPEN = "open", "Waiting for a lead"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class FlagProposal(models.Model):
    """A bias flag's proposal to change an annotator's standing, which a lead accepts (the
    standing changes, with the flag in the audit trail) or rejects with one click. The row itself
    is the audit of the decision: who, when and why."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="flag_proposals")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    flag_kind = models.CharField(max_length=32)
    title = models.CharField(max_length=200)
    explanation = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    examples = models.JSONField(default=list, blank=True, help_text="Item ids.")
    proposed_state = models.CharField(max_length=20, choices=StandingState.choices, default=StandingState.NEEDS_RETRAINING)
    status = models.CharField(max_length=12, choices=ProposalStatus.choices, default=ProposalStatus.OPEN)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator", "flag_kind"],
                                               condition=models.Q(status="open"), name="one_open_proposal_per_flag")]
