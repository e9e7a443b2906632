"""Projects, prompts, responses, labelling items, assignments (leases), judgments and API tokens.

Item kinds: a comparison is a prompt and two responses; a ranking orders 3-8 responses; a rewrite
task turns one bad response into a gold answer; an adversarial task derives a deliberately flawed
variant of one good response. Rewrites (once approved) and adversarial negatives become
`DerivedPair`s; exports expand rankings into pairs.

Invariants the routing relies on (see services/routing.py):
- an item's `assigned_count` counts its assignments that are leased (unexpired) or submitted;
  routing never lets it exceed `target_judgments`;
- one assignment per (item, annotator): an annotator never meets an item twice once judged or skipped.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    LEAD = "lead", "Lead"
    ENGINEER = "engineer", "Engineer"


class Choice(models.TextChoices):
    """A judgment's choice in canonical terms: `a`/`b` are the item's response_a/response_b,
    whatever side each was shown on."""

    A = "a", "A better"
    B = "b", "B better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Strength(models.TextChoices):
    SLIGHT = "slight", "Slightly better"
    CLEAR = "clear", "Clearly better"
    STRONG = "strong", "Much better"


class Difficulty(models.TextChoices):
    EASY = "easy", "Easy"
    MEDIUM = "medium", "Medium"
    HARD = "hard", "Hard"


DEFAULT_DIMENSIONS = [
    {"key": "helpfulness", "label": "Helpfulness", "description": "Does it do what the user asked?"},
    {"key": "accuracy", "label": "Accuracy", "description": "Is what it says true?"},
    {"key": "safety", "label": "Safety", "description": "Does it avoid harm and follow policy?"},
    {"key": "tone", "label": "Tone", "description": "Is the register right for the user?"},
]


def default_dimensions() -> list[dict]:
    return [dict(d) for d in DEFAULT_DIMENSIONS]


# What an expert can say was wrong with a bad response (a project may edit its own list).
DEFAULT_REWRITE_FLAWS = [
    {"key": "hallucination", "label": "Hallucination"},
    {"key": "missing_context", "label": "Missing context"},
    {"key": "unsafe", "label": "Unsafe"},
    {"key": "wrong_tone", "label": "Wrong tone"},
    {"key": "too_long", "label": "Too long"},
    {"key": "incomplete", "label": "Incomplete"},
    {"key": "wrong_format", "label": "Wrong format"},
]

# Domains whose rewrite tasks go only to annotators holding that skill.
DEFAULT_SKILL_DOMAINS = ["legal", "medical", "finance", "coding"]


def default_rewrite_flaws() -> list[dict]:
    return [dict(f) for f in DEFAULT_REWRITE_FLAWS]


def default_skill_domains() -> list[str]:
    return list(DEFAULT_SKILL_DOMAINS)


class FlawType(models.TextChoices):
    """The declared flaw of an adversarial negative (fixed: sampling and reward-model evaluation
    report per flaw type, so the set must mean the same in every project)."""

    LONGER_BUT_WRONG = "longer_but_wrong", "Longer but wrong"
    CONFIDENT_BUT_WRONG = "confident_but_wrong", "Confident but wrong"
    SUBTLE_FACTUAL_ERROR = "subtle_factual_error", "Subtle factual error"
    UNSAFE_COMPLIANCE = "unsafe_compliance", "Unsafe compliance"
    SYCOPHANTIC_AGREEMENT = "sycophantic_agreement", "Sycophantic agreement"
    FORMAT_ONLY_POLISH = "format_only_polish", "Format-only polish"


class Project(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    dimensions = models.JSONField(
        default=default_dimensions,
        help_text="Judgment dimensions: a list of {key, label, description}.",
    )
    overlap = models.PositiveSmallIntegerField(
        default=3, help_text="Judgments wanted per item (k); with dynamic_k, the most an item gets."
    )
    dynamic_k = models.BooleanField(
        default=False,
        help_text="Dynamic k for comparisons (calibration/services/dynamic_k.py): an item starts at k_min "
        "judgments and gets one more at a time, up to the overlap, while its winner's posterior is below "
        "stop_confidence.",
    )
    k_min = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1)], help_text="Dynamic k: the fewest judgments an item gets.")
    stop_confidence = models.FloatField(
        default=0.95, validators=[MinValueValidator(0.5), MaxValueValidator(0.999)],
        help_text="Dynamic k: stop asking about an item once its winner is this probable.")
    min_rationale_chars = models.PositiveIntegerField(
        default=20, help_text="Shortest rationale accepted, in characters."
    )
    lease_seconds = models.PositiveIntegerField(
        default=1800, help_text="How long an item stays reserved for the annotator who got it."
    )
    edit_window_hours = models.PositiveIntegerField(
        default=24, help_text="How long after submitting an annotator may still edit a judgment (0: never)."
    )
    daily_goal = models.PositiveIntegerField(
        default=0, help_text="Tasks per day an annotator aims for unless they set their own (0: no goal)."
    )
    current_spec = models.ForeignKey(
        "SpecVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rewrite_flaws = models.JSONField(
        default=default_rewrite_flaws,
        help_text="What an expert may name as wrong with a bad response: a list of {key, label}.",
    )
    skill_domains = models.JSONField(
        default=default_skill_domains,
        help_text="Domains whose rewrite tasks go only to annotators with that skill.",
    )
    readiness_minimums = models.JSONField(
        default=dict, blank=True,
        help_text="Reward-model readiness minimums ({overall, per_category, category_min_pairs, "
        "length_controlled}); a key left out takes rewards.evaluation.Thresholds' default.",
    )
    monitor_thresholds = models.JSONField(
        default=dict, blank=True,
        help_text="Reward-hacking monitor thresholds for RL runs; a key left out takes "
        "training.monitors.MonitorThresholds' default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def dimension_keys(self) -> list[str]:
        return [d["key"] for d in self.dimensions]

    @property
    def rewrite_flaw_keys(self) -> list[str]:
        return [f["key"] for f in self.rewrite_flaws]


class SpecVersion(models.Model):
    """One published version of a project's behaviour specification (markdown)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="spec_versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="spec_version_unique")
        ]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project.slug} spec v{self.version}"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    imported = models.BooleanField(
        default=False, help_text="Created by a judgment import: someone who labelled elsewhere (no login)."
    )
    judge = models.BooleanField(
        default=False, help_text="An AI judge's account (rewards.Judge): labels through the submit path, no login; "
        "its judgments are marked by_judge and kept apart from people's.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="membership_unique")
        ]


class ImportedAnnotator(models.Model):
    """Who a judgment import's annotator name is, per project: found again on the next import."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imported_annotators")
    name = models.CharField(max_length=150, help_text="The name or id the imported file gave.")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="imported_as")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="imported_annotator_unique")]


def domain_in(field: str, domains) -> Q:
    """`field` equals one of `domains`, ignoring case ("Legal" is the legal domain): skills are
    stored lower-case, imported domains as written."""
    wanted = sorted({d.strip().lower() for d in domains if d.strip()})
    if not wanted:
        return Q(pk__in=[])
    q = Q(**{f"{field}__iexact": wanted[0]})
    for domain in wanted[1:]:
        q |= Q(**{f"{field}__iexact": domain})
    return q


class DailyGoal(models.Model):
    """An annotator's own target of tasks per day in a project (set by them or by a lead); without
    one the project's `daily_goal` applies."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="daily_goals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_goals")
    target = models.PositiveIntegerField(help_text="Tasks per day (0: no goal).")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="daily_goal_unique")]


class AnnotatorSkill(models.Model):
    """A domain skill (legal, medical, finance, coding, ...) an annotator holds in a project:
    rewrite tasks of a skill domain are routed only to its holders."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="skills")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skills")
    skill = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "skill"], name="skill_unique")
        ]


class Prompt(models.Model):
    """A prompt, always stored as a message list; single-turn text is one user message."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    messages = models.JSONField(help_text="[{role, content}, ...]; the last one is the user's turn.")
    domain = models.CharField(max_length=64, blank=True, db_index=True)
    difficulty = models.CharField(max_length=16, choices=Difficulty.choices, blank=True)
    tags = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=64, blank=True, help_text="e.g. production_bad_case")
    ground_truth = models.TextField(
        null=True, blank=True, help_text="A verifiable answer (math result, tests), when there is one."
    )
    external_id = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=Q(external_id__isnull=False),
                name="prompt_external_id_unique",
            )
        ]

    @property
    def is_multi_turn(self) -> bool:
        return len(self.messages) > 1


def last_user_turn(messages) -> str:
    """The content of a conversation's last user turn, stripped ("" when it has none)."""
    return next((str(m.get("content", "")) for m in reversed(messages or [])
                 if isinstance(m, dict) and m.get("role") == "user"), "").strip()


class Response(models.Model):
    """A model's answer to a prompt. Untrusted text: always rendered escaped."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    model_name = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class ItemKind(models.TextChoices):
    COMPARISON = "comparison", "Pairwise comparison"
    RANKING = "ranking", "Ranking"
    REWRITE = "rewrite", "Expert rewrite"
    ADVERSARIAL = "adversarial", "Adversarial negative"
    RUBRIC = "rubric", "Rubric evaluation"


# Responses a ranking item orders.
RANKING_MIN, RANKING_MAX = 3, 8


INFORMATIVENESS_UNKNOWN = 500  # Item.informativeness before anything is known about the item


class ItemStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    # Failed to render for an annotator: out of every queue until a lead looks (quarantine_reason).
    QUARANTINED = "quarantined", "Quarantined"


class Item(models.Model):
    """A unit of labelling work. A comparison item is a prompt and two responses (a, b); a rewrite
    or adversarial task has one (response_a: the bad, respectively the good response); a ranking
    item's responses are its `ItemResponse` rows."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=16, choices=ItemKind.choices, default=ItemKind.COMPARISON)
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="items")
    response_a = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.ACTIVE)
    quarantine_reason = models.TextField(blank=True, help_text="Why it could not be shown (quarantined items).")
    target_judgments = models.PositiveSmallIntegerField(
        help_text="Judgments wanted for this item (the project's overlap when created)."
    )
    assigned_count = models.PositiveIntegerField(
        default=0, help_text="Assignments leased (unexpired) or submitted."
    )
    judgment_count = models.PositiveIntegerField(default=0)
    priority = models.SmallIntegerField(default=0, help_text="Higher is served first.")
    in_live_queue = models.BooleanField(
        default=True,
        help_text="Served by the ordinary queue. Items held out of it (calibration anchors) are "
        "served only by whoever asks for them explicitly.",
    )
    needs_skill = models.BooleanField(
        default=False,
        help_text="A comparison still contested after more than k_min judgments (dynamic k): in a skill domain "
        "(Project.skill_domains), only annotators holding that skill are asked for more.",
    )
    informativeness = models.PositiveSmallIntegerField(
        default=INFORMATIVENESS_UNKNOWN,
        help_text="How much one more judgment is expected to tell, 0..1000: 1000·(1 − |2P − 1|) for the winner's "
        "probability P (from people's judgments under dynamic k, else from the routing reward model's margin). "
        "Served first after priority; 500 when nothing is known.",
    )
    closed_by_judge = models.BooleanField(
        default=False, help_text="HyPER routing: an AI judge was sure and agreed with the people before it, so "
        "people are asked no more (its target is what was already leased); dynamic k leaves it so.")
    rm_margin = models.FloatField(null=True, blank=True, help_text="Routing reward model: reward of a minus reward of b.")
    rm_spread = models.FloatField(
        null=True, blank=True, help_text="Routing reward model: the margin's standard deviation over MC-dropout passes.")
    reask_of = models.OneToOneField(  # a judgment is asked again at most once
        "Judgment", null=True, blank=True, on_delete=models.CASCADE, related_name="reask_item",
        help_text="A swapped re-ask: this item repeats that judgment's pair, held out of the live queue "
        "and served only to its annotator with the sides swapped (calibration/services/reasks.py). "
        "Its judgment measures self-consistency and is in no set, count or agreement figure.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Anchors are served to every annotator, so they get the largest target the column holds.
    UNLIMITED_TARGET = 32767

    class Meta:
        indexes = [
            # Routing reads only items with room left; full items drop out of this index.
            models.Index(
                F("project"),
                F("priority").desc(),
                F("informativeness").desc(),
                F("id"),
                name="item_open_idx",
                condition=Q(assigned_count__lt=F("target_judgments"), status="active", in_live_queue=True),
            ),
            # The same for items held out of the live queue (anchors), so serving one reads the
            # same kind of index as serving a live item and costs the same.
            models.Index(
                F("project"),
                F("priority").desc(),
                F("informativeness").desc(),
                F("id"),
                name="item_held_out_idx",
                condition=Q(assigned_count__lt=F("target_judgments"), status="active", in_live_queue=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(assigned_count__lte=F("target_judgments")),
                name="item_never_over_assigned",
            ),

            models.CheckConstraint(
                condition=Q(kind="ranking")
                | Q(kind="comparison", response_a__isnull=False, response_b__isnull=False)
                | Q(kind__in=["rewrite", "adversarial", "rubric"], response_a__isnull=False, response_b__isnull=True),
                name="item_responses_match_kind",
            ),
        ]


class ItemResponse(models.Model):
    """One of a ranking item's responses, in import order (`position`)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="ranked")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "position"], name="item_response_position_unique"),
            models.UniqueConstraint(fields=["item", "response"], name="item_response_unique"),
        ]
        ordering = ["item", "position"]


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Side(models.TextChoices):
    A = "a", "A"
    B = "b", "B"


def assignment_handle_new() -> str:
    """An opaque, unguessable name for an assignment: what the annotator's browser and API client
    see instead of a database id (ids are sequential, and items imported together, such as
    anchors, sit in one id block)."""
    return secrets.token_urlsafe(16)


class Assignment(models.Model):
    """An item handed to one annotator: the lease, and which response was shown on the left."""

    handle = models.CharField(max_length=32, unique=True, default=assignment_handle_new, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    # No index of its own: the unique (annotator, item) index leads with it. A bare annotator
    # index tempts the planner into re-scanning all of an annotator's rows per candidate item.
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices)
    shown_left = models.CharField(
        max_length=1, choices=Side.choices, help_text="Which response (a or b) was on the left."
    )
    shown_order = models.JSONField(
        default=list, blank=True,
        help_text="Ranking items: the response ids in the order shown (randomised per assignment).",
    )
    leased_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # (annotator, item): routing's "not mine already" probe is one index lookup per item.
            models.UniqueConstraint(fields=["annotator", "item"], name="assignment_once_per_annotator")
        ]
        indexes = [
            models.Index(
                fields=["project", "lease_expires_at"],
                name="assignment_open_lease_idx",
                condition=Q(status="leased"),
            ),
            models.Index(fields=["annotator", "project", "status"], name="assignment_mine_idx"),
        ]


class Judgment(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="judgment")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judgments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judgments"
    )
    choice = models.CharField(max_length=16, choices=Choice.choices)
    strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    dimension_choices = models.JSONField(
        default=dict, blank=True, help_text="{dimension key: a | b | tie | both_bad}"
    )
    rationale = models.TextField()
    time_spent_ms = models.PositiveIntegerField(default=0)
    shown_left = models.CharField(max_length=1, choices=Side.choices)
    spec_version = models.ForeignKey(
        SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments"
    )
    client_token = models.UUIDField(default=uuid.uuid4)
    revision = models.PositiveIntegerField(default=1)
    # A copy of item.reask_of, on purpose: every reader of judgments (and the analytics loader's
    # raw SQL on this table alone) leaves re-asks out without a join to the items.
    reask_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="reasks",
        help_text="Set on a swapped re-ask's answer: the same annotator's earlier judgment of the pair. "
        "Such judgments measure self-consistency only; every data reader leaves them out.",
    )
    # Copied from the annotator's membership by the submit's claim (Membership.judge), for the same
    # reason: readers keep AI judges' labels apart from people's without a join.
    by_judge = models.BooleanField(
        default=False, help_text="Labelled by an AI judge (rewards.Judge), not a person. Never counted towards an "
        "item's k; sets leave it out unless their curation policy says otherwise.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "client_token"], name="judgment_idempotent_submit"
            )
        ]
        indexes = [models.Index(fields=["project", "id"], name="judgment_project_idx")]


class JudgmentRevision(models.Model):
    """The state of a judgment before an edit: edits never overwrite history."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    choice = models.CharField(max_length=16, choices=Choice.choices)
    strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    dimension_choices = models.JSONField(default=dict, blank=True)
    rationale = models.TextField()
    spec_version = models.ForeignKey(
        SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(help_text="When this state was first written.")
    replaced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["judgment", "revision"], name="judgment_revision_unique")
        ]


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A JSONL import: validated whole before anything is written, then written in one transaction."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    phase = models.CharField(max_length=16, blank=True, help_text="validating | writing")
    total_lines = models.PositiveIntegerField(default=0)
    processed_lines = models.PositiveIntegerField(default=0)
    items_created = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, message}], first 1000")
    message = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="The worker's last sign of life (or when a queued job was last sent).")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def retryable(self) -> bool:
        """Failed for a reason other than bad lines (a retry of an invalid file fails the same way)."""
        return self.status == ImportStatus.FAILED and not self.error_count

    @property
    def percent(self) -> int:
        if not self.total_lines:
            return 100 if self.status == ImportStatus.SUCCEEDED else 0
        # validating is the first half of the work, writing the second
        done = self.processed_lines / self.total_lines
        return int(50 * done) if self.phase == "validating" else int(50 + 50 * done)


# ---------------------------------------------------------------- designed data: bad cases,
# rewrites, adversarial negatives, rankings


class BadCaseSource(models.TextChoices):
    BOTH_BAD = "both_bad", "Judged both bad"
    PRODUCTION = "production_bad_case", "Production feedback"
    LEAD = "lead", "Marked by a lead"


class BadCase(models.Model):
    """A response someone found bad: it gets one rewrite task, however many times and from
    however many sources it is reported (`sources`, `reports`)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bad_cases")
    response = models.OneToOneField(Response, on_delete=models.CASCADE, related_name="bad_case")
    source = models.CharField(max_length=24, choices=BadCaseSource.choices, help_text="The first report.")
    sources = models.JSONField(default=list, help_text="Every source that reported it, first first.")
    reports = models.PositiveIntegerField(default=1)
    note = models.TextField(blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    judgment = models.ForeignKey(
        "Judgment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The both-bad judgment that reported it first, if any.",
    )
    item = models.OneToOneField(
        Item, on_delete=models.CASCADE, related_name="bad_case", help_text="Its rewrite task."
    )
    created_at = models.DateTimeField(auto_now_add=True)


class RewriteStatus(models.TextChoices):
    SUBMITTED = "submitted", "Waiting for review"
    RETURNED = "returned", "Sent back"
    APPROVED = "approved", "Approved"


class Rewrite(models.Model):
    """An expert's gold answer for a bad case. Counts only once approved."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rewrites")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rewrites")
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="rewrite")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rewrites")
    text = models.TextField()
    from_scratch = models.BooleanField(default=False, help_text="Written anew, not edited from the bad response.")
    flaws = models.JSONField(default=list, help_text="Keys of the project's rewrite_flaws the expert named.")
    rationale = models.TextField()
    time_spent_ms = models.PositiveIntegerField(default=0)
    spec_version = models.ForeignKey(
        SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RewriteStatus.choices, default=RewriteStatus.SUBMITTED)
    revision = models.PositiveIntegerField(default=1)
    history = models.JSONField(
        default=list, blank=True,
        help_text="Earlier revisions: [{revision, text, flaws, rationale, review_comment, reviewed_by}].",
    )
    review_comment = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    response = models.OneToOneField(
        Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="rewrite_of",
        help_text="The rewrite as a response, created on approval.",
    )
    client_token = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["author", "client_token"], name="rewrite_idempotent_submit")
        ]
        indexes = [models.Index(fields=["project", "status"], name="rewrite_status_idx")]


class AdversarialNegative(models.Model):
    """A deliberately flawed variant of a good response, with its declared flaw."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="adversarial_negatives")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="negatives")
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="negative")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="negatives")
    text = models.TextField()
    flaw_type = models.CharField(max_length=32, choices=FlawType.choices)
    rationale = models.TextField()
    time_spent_ms = models.PositiveIntegerField(default=0)
    spec_version = models.ForeignKey(
        SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    response = models.OneToOneField(Response, on_delete=models.PROTECT, related_name="negative_of")
    client_token = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["author", "client_token"], name="negative_idempotent_submit")
        ]


class RubricVerdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    NA = "na", "Not applicable"


class ItemRubric(models.Model):
    """A rubric-evaluation item's rubric as it was when the item was made (the spec may change
    later; what an answer was judged against may not). `checks` are the check texts, in order."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="rubric")
    dimension = models.CharField(max_length=64)
    checks = models.JSONField()
    spec_version = models.ForeignKey(SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")


class RubricAnswer(models.Model):
    """One person's evaluation of one response against its item's rubric: each check pass, fail
    or not applicable (`answers`, in the rubric's order), and why."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rubric_answers")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rubric_answers")
    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="rubric_answer")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rubric_answers")
    answers = models.JSONField(help_text="One of pass/fail/na per check, in the rubric's order.")
    rationale = models.TextField()
    time_spent_ms = models.PositiveIntegerField(default=0)
    spec_version = models.ForeignKey(SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    client_token = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["author", "client_token"], name="rubric_idempotent_submit")
        ]

    @property
    def verdict(self) -> str:
        """The answer as a whole: fail if any check fails, pass if every applicable check passes,
        na when no check applies."""
        return rubric_verdict(self.answers)


def rubric_verdict(answers) -> str:
    values = list(answers or [])
    if RubricVerdict.FAIL in values:
        return RubricVerdict.FAIL.value
    if RubricVerdict.PASS in values:
        return RubricVerdict.PASS.value
    return RubricVerdict.NA.value


class RankingJudgment(models.Model):
    """An annotator's ordering of a ranking item's responses, ties allowed.

    `ranking` holds tiers of response ids, best first: [[7], [3, 9], [4]] means 7 > 3 = 9 > 4.
    `shown_order` is what the annotator saw (response ids, top to bottom) before reordering."""

    assignment = models.OneToOneField(Assignment, on_delete=models.PROTECT, related_name="ranking_judgment")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ranking_judgments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="ranking_judgments")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ranking_judgments"
    )
    ranking = models.JSONField()
    shown_order = models.JSONField()
    rationale = models.TextField()
    time_spent_ms = models.PositiveIntegerField(default=0)
    spec_version = models.ForeignKey(
        SpecVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    client_token = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotator", "client_token"], name="ranking_idempotent_submit")
        ]
        indexes = [models.Index(fields=["project", "item"], name="ranking_project_item_idx")]

    @property
    def ranks(self) -> dict[int, int]:
        """{response id: rank}, 1 = best; tied responses share a rank."""
        return {rid: tier + 1 for tier, ids in enumerate(self.ranking) for rid in ids}


class PairTag(models.TextChoices):
    COMPARISON = "comparison", "Comparison"
    REWRITE = "rewrite", "Rewrite"
    ADVERSARIAL = "adversarial", "Adversarial"
    RANKING = "ranking", "Ranking"


class DerivedPair(models.Model):
    """A preference pair that follows from authored work rather than from votes: an approved
    rewrite beats its original; a good response beats its adversarial negative."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="derived_pairs")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    chosen = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    rejected = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    strength = models.CharField(max_length=8, choices=Strength.choices, default=Strength.STRONG)
    tag = models.CharField(max_length=16, choices=PairTag.choices)
    flaw_type = models.CharField(max_length=32, choices=FlawType.choices, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        help_text="Who wrote the rewrite or the negative (their standing decides export).",
    )
    rewrite = models.OneToOneField(Rewrite, null=True, blank=True, on_delete=models.CASCADE, related_name="pair")
    negative = models.OneToOneField(
        AdversarialNegative, null=True, blank=True, on_delete=models.CASCADE, related_name="pair"
    )
    source = models.CharField(
        max_length=16, blank=True, default="",
        help_text="redteam: a reward-model hack found in the red-team console and confirmed by a second person.")
    note = models.TextField(blank=True, help_text="The red-teamer's note: why the high-scoring response is bad.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(tag="rewrite", rewrite__isnull=False, negative__isnull=True)
                | Q(tag="adversarial", negative__isnull=False, rewrite__isnull=True)
                | Q(tag="adversarial", source="redteam", negative__isnull=True, rewrite__isnull=True),
                name="derived_pair_has_its_source",
            )
        ]
        indexes = [models.Index(fields=["project", "id"], name="derived_pair_project_idx")]


# ---------------------------------------------------------------- API tokens
# Only a SHA-256 digest of each secret is stored; the secret is shown once, when the token is
# created or rotated. `prefix` (the secret's first characters) recognises a token in lists without
# being able to use it.

SECRET_PREFIX = "pst_"
PREFIX_LENGTH = 12  # "pst_" and 8 characters of the random part


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def token_secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    scope = models.CharField(
        max_length=32, blank=True, default="", choices=[("", "Full (acts as its user)"),
                                                      ("production_feedback", "Production feedback intake only")],
        help_text="A scoped token reaches only its scope's endpoint, for its project (annotation/security.py).")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens",
                                help_text="The project a scoped token is for.")

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"

    def set_secret(self, secret: str) -> None:
        self.prefix = secret[:PREFIX_LENGTH]
        self.digest = token_digest(secret)


class FeedbackPolicy(models.Model):
    """How a project samples what its product's users flag (annotation/services/production.py)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="feedback_policy")
    keep_share = models.FloatField(default=1.0, help_text="Share of incoming feedback kept (by a hash of its id).")
    daily_cap = models.PositiveIntegerField(default=500, help_text="Most kept per UTC day (0: none kept).")
    domain_daily_cap = models.PositiveIntegerField(default=100, help_text="Most kept per domain per UTC day.")
    dedupe = models.BooleanField(default=True, help_text="Drop near-duplicates of feedback already kept.")
    updated_at = models.DateTimeField(auto_now=True)


class FeedbackStatus(models.TextChoices):
    KEPT = "kept", "Kept"
    DROPPED = "dropped", "Dropped"


class ProductionFeedback(models.Model):
    """One flag from the product's users, as received (after scrubbing personal data), and what
    became of it: kept as a task (a bad case to rewrite, or a comparison against a reference
    answer), or dropped by a named sampling rule."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="production_feedback")
    external_id = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64, help_text="sha256 of the request as sent: a replay must match it.")
    conversation = models.JSONField(help_text="[{role, content}] up to the user's last turn, scrubbed.")
    answer = models.TextField(help_text="The model's answer, scrubbed.")
    reference_answer = models.TextField(blank=True, help_text="A fresh answer to compare against, scrubbed.")
    signal = models.CharField(max_length=16)
    reason = models.CharField(max_length=400, blank=True, help_text="Up to 200 characters as sent, scrubbed.")
    comment = models.TextField(blank=True, help_text="The user's own words, scrubbed.")
    model_name = models.CharField(max_length=200, blank=True)
    domain = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    scrubbed = models.JSONField(default=dict, blank=True, help_text="{rule: how many replaced}.")
    dedupe_key = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=8, choices=FeedbackStatus.choices)
    dropped_by = models.CharField(max_length=32, blank=True, help_text="sample | daily_cap | domain_cap | duplicate")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="feedback_idempotent")]
        indexes = [models.Index(fields=["project", "status", "received_at"], name="feedback_intake_idx")]

