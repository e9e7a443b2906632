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

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from annotation.models import Choice, Item, Judgment, Project, Side, Strength


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
