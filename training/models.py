"""Training runs: reward models, and GRPO/PPO policy runs. A run is queued by a service,
done by a worker on the `gpu` queue, and reports its progress, metrics, log lines and checkpoints
here as it goes, so the page, the API and the command all read one record."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models import Project
from rewards.models import FreezeStatus, PreferenceSet, RewardModel


class RunKind(models.TextChoices):
    REWARD_MODEL = "reward_model", "Reward model"
    GRPO = "grpo", "GRPO policy run"
    PPO = "ppo", "PPO policy run"
    GENERATIVE_JUDGE = "generative_judge", "Generative judge (SFT on the rm-r1 export)"


RL_KINDS = (RunKind.GRPO, RunKind.PPO)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class Run(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.REWARD_MODEL)
    preference_set = models.ForeignKey(PreferenceSet, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="runs")
    config = models.JSONField(help_text="The run's config dataclass as JSON (training.config).")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=64, blank=True, help_text="What the worker is doing now, in words.")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True, help_text="The last logged training loss.")
    throughput = models.FloatField(null=True, blank=True, help_text="Training pairs per second so far.")
    eta_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=64, blank=True, help_text="Where it ran: cpu, cuda, or cuda x N.")
    worker = models.CharField(max_length=200, blank=True, help_text="hostname:pid of the worker that took it.")
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    checkpoints = models.JSONField(default=list, blank=True, help_text="[{step, path}] in the order saved.")
    reward_model = models.ForeignKey(RewardModel, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker's last sign of life.")
    summary = models.JSONField(default=dict, blank=True, help_text=(
        "What the run decided as it went: the Pre-PPO prompt selection and curriculum, the final figures."))
    external = models.JSONField(default=dict, blank=True, help_text=(
        "A run handed to a Ray cluster: {engine, address, submission_id, state, message, files, entrypoint}."))
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_active_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.kind}, {self.status})"

    @property
    def percent(self) -> int:
        if self.status == RunStatus.SUCCEEDED:
            return 100
        return int(100 * self.step / self.total_steps) if self.total_steps else 0


class RunMetric(models.Model):
    """One logged training step: the loss chart's points."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    loss = models.FloatField(null=True)
    learning_rate = models.FloatField(null=True)
    throughput = models.FloatField(null=True)
    values = models.JSONField(default=dict, blank=True, help_text="Anything else the trainer logged.")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "step"], name="run_metric_step_idx")]


class RunLog(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs")
    level = models.CharField(max_length=8, default="info")
    message = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]


class RunAlert(models.Model):
    """A reward-hacking monitor fired (training/monitors.py). `prompt_ids` are the prompts of the
    step that fired it; the policy's answers to them at that step are RunSamples."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="alerts")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    message = models.TextField()
    value = models.FloatField(null=True)
    threshold = models.FloatField(null=True)
    prompt_ids = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]


class SuiteResult(models.Model):
    """The behavioural suite on one checkpoint, one behaviour dimension (a domain of the held-out
    prompts): judged by the verifiers and text statistics, never by the reward model. Step 0 is
    the starting policy."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="suite_results")
    step = models.PositiveIntegerField()
    checkpoint = models.CharField(max_length=500, blank=True)
    dimension = models.CharField(max_length=64)
    prompts = models.PositiveIntegerField()
    verified = models.PositiveIntegerField(default=0, help_text="Prompts a verifier applies to.")
    verifier_pass = models.FloatField(null=True, help_text="Mean verifier score where one applies.")
    mean_length = models.FloatField(help_text="Mean answer length in words.")
    hedging = models.FloatField(help_text="Hedge words per 100 words.")
    list_rate = models.FloatField()
    weak = models.BooleanField(default=False, help_text="Worse than the starting policy (see training.suite).")
    reasons = models.JSONField(default=list, blank=True)
    flagged = models.JSONField(default=list, blank=True, help_text=(
        "Prompt ids to send to annotators: those the verifier failed, else all of the dimension's."))
    answers = models.JSONField(default=list, blank=True, help_text=(
        "[{prompt_id, score}] per suite prompt of the dimension: the verifiers' score (null: none applies)."))
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "dimension"]
        constraints = [models.UniqueConstraint(fields=["run", "step", "dimension"], name="suite_result_unique")]


class SampleRole(models.TextChoices):
    REFERENCE = "reference", "Reference"
    POLICY = "policy", "Policy"


class RunSample(models.Model):
    """One answer kept for later comparison: the reference's (step 0) or the policy's at a step."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=SampleRole.choices)
    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.CASCADE, related_name="+")
    completion = models.TextField()
    reward = models.FloatField(null=True)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "role", "step"], name="run_sample_idx")]


class RubricRole(models.TextChoices):
    BASELINE = "baseline", "SFT baseline"
    CHECKPOINT = "checkpoint", "Checkpoint"


class RubricEval(models.Model):
    """A behavioural-suite answer sent to people as a rubric evaluation (training/services/human_suite.py):
    the run's baseline (the reference's answer, step 0) or a checkpoint's, on one suite prompt. The
    item says none of this to the annotator; identical answers share one item."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rubric_evals")
    step = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=RubricRole.choices)
    dimension = models.CharField(max_length=64)
    prompt = models.ForeignKey("annotation.Prompt", on_delete=models.CASCADE, related_name="+",
                               help_text="The suite prompt (the item has its own copy).")
    item = models.ForeignKey("annotation.Item", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "role", "step", "prompt"], name="rubric_eval_unique")]


class FeedbackBatch(models.Model):
    """Labelling work made from a run: the policy's answers against the reference's on flagged
    prompts, as ordinary comparison items."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="feedback_batches")
    alert = models.ForeignKey(RunAlert, null=True, blank=True, on_delete=models.SET_NULL, related_name="batches")
    step = models.PositiveIntegerField()
    dimension = models.CharField(max_length=64, blank=True)
    items = models.JSONField(default=list, help_text="The ids of the items created.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)


class JudgeKind(models.TextChoices):
    REWARD_MODEL = "reward_model", "Reward model from the registry"
    LOCAL_MODEL = "local_model", "Local transformers model directory (causal LM)"
    ENDPOINT = "endpoint", "OpenAI-compatible chat endpoint"


class JudgeUse(models.TextChoices):
    CALIBRATION = "calibration", "Calibration round"
    PRELABEL = "prelabel", "Pre-label"
    TIEBREAK = "tiebreak", "Tie-breaker"
    ROUTE = "route", "Routing (HyPER)"


class Judge(models.Model):
    """An AI judge registered on a project (training/services/judges.py): it labels comparisons through the
    same submit path as a person, from its own account (a judge membership, no login), so it gets
    a standing from anchors, agreement and bias figures like anyone; its labels are marked
    Judgment.by_judge and stay out of sets unless a curation policy takes them."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judges")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=JudgeKind.choices)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="judge")
    reward_model = models.ForeignKey(RewardModel, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="judges", help_text="kind reward_model: the registry's model.")
    model_dir = models.CharField(max_length=500, blank=True, help_text="kind local_model: a causal LM directory.")
    endpoint_url = models.CharField(max_length=500, blank=True,
                                    help_text="kind endpoint: the API's base URL (…/v1); /chat/completions is added.")
    endpoint_model = models.CharField(max_length=200, blank=True, help_text="kind endpoint: the model name sent.")
    api_key_env = models.CharField(max_length=100, blank=True,
                                   help_text="kind endpoint: the environment variable holding the key (never stored).")
    sure_at = models.FloatField(default=0.8, help_text="Routing: the judge is sure when its P(winner) is at least this.")
    cost_per_call = models.FloatField(default=0.0, help_text="Fixed cost of one call, in the project's currency.")
    cost_per_1k_tokens = models.FloatField(default=0.0, help_text="Cost per 1000 tokens (endpoint usage).")
    timeout_seconds = models.PositiveSmallIntegerField(default=30)
    active = models.BooleanField(default=True)
    evaluation = models.JSONField(default=dict, blank=True, help_text=(
        "A generative judge's held-out evaluation (training run): accuracy per category, position consistency."))
    source_run_id = models.PositiveIntegerField(null=True, blank=True, help_text="The training run that made it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="judge_unique_name")]

    def __str__(self) -> str:
        return self.name


class JudgeCall(models.Model):
    """One call of a judge on one item: what it said (in canonical a/b terms), what it cost and how
    long it took; failed calls too, with their reason (nothing is stored as a label then)."""

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="calls")
    item = models.ForeignKey("annotation.Item", null=True, on_delete=models.SET_NULL, related_name="+")
    purpose = models.CharField(max_length=16, choices=JudgeUse.choices)
    ok = models.BooleanField(default=False)
    p_a = models.FloatField(null=True, help_text="The judge's probability that response a is the better one.")
    choice = models.CharField(max_length=16, blank=True, help_text="a | b | tie | both_bad (canonical).")
    shown_left = models.CharField(max_length=1, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    judgment = models.ForeignKey("annotation.Judgment", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge", "id"]
        indexes = [models.Index(fields=["judge", "purpose"], name="judgecall_judge_purpose_idx")]


class BackgroundJob(models.Model):
    """What the shared job lifecycle (annotation/services/jobs.py) reads and writes on a job row:
    status, progress, the reason it failed, its heartbeat and times."""

    status = models.CharField(max_length=16, choices=FreezeStatus.choices, default=FreezeStatus.QUEUED)
    phase = models.CharField(max_length=64, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class JudgeJob(BackgroundJob):
    """A judge's batch of work on a worker (calibration, pre-labels, tie-breaks, routing): its
    progress, and what came of it; the job lifecycle of annotation/services/jobs.py."""

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="jobs")
    use = models.CharField(max_length=16, choices=JudgeUse.choices)
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many items (none: all).")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    outcome = models.JSONField(default=dict, blank=True, help_text="Labelled, failed, closed for people, ...")


class ItemScoring(BackgroundJob):
    """The routing reward model's pass over a project's open comparisons (training/services/item_scores.py):
    each gets the model's margin and its spread over MC-dropout passes, which order the queue and
    send the uncertain ones to skill holders. The latest finished one is the project's routing model."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="item_scorings")
    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="item_scorings")
    mc_samples = models.PositiveSmallIntegerField(default=8, help_text="MC-dropout passes for the spread.")
    outcome = models.JSONField(default=dict, blank=True, help_text="Items scored, found uncertain, sent to skill holders.")


class RedTeamAccess(models.Model):
    """An annotator a lead let into the red-team console (leads and engineers are in already)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="redteam_access")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="redteam_access")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="redteam_access_unique")]


class AttemptStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SCORED = "scored", "Scored"
    FAILED = "failed", "Failed"


class RedTeamAttempt(models.Model):
    """A prompt and a response someone wrote to see what a reward model makes of it, scored live by
    the scoring worker (training/services/redteam.py), with a reference response's score and the
    response's percentile among the scores of that prompt's samples."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="redteam_attempts")
    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="redteam_attempts")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    prompt = models.TextField()
    response = models.TextField()
    reference = models.TextField(blank=True, help_text="A good response to the same prompt, scored beside it.")
    policy_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The policy run whose prompt this is (its samples set the percentile).")
    status = models.CharField(max_length=8, choices=AttemptStatus.choices, default=AttemptStatus.QUEUED)
    score = models.FloatField(null=True)
    reference_score = models.FloatField(null=True)
    percentile = models.FloatField(null=True, help_text="Share of the prompt's scored samples below this score.")
    samples = models.PositiveIntegerField(default=0, help_text="How many samples the percentile is over.")
    latency_ms = models.PositiveIntegerField(null=True, help_text="From the request to the score being stored.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scored_at = models.DateTimeField(null=True)


class HackStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a second person"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class RedTeamHack(models.Model):
    """A high-scoring bad response submitted as a hack: once a second person confirms it, it is an
    adversarial pair (reference > hack) in the project's data."""

    attempt = models.OneToOneField(RedTeamAttempt, on_delete=models.CASCADE, related_name="hack")
    flaw_type = models.CharField(max_length=32)
    note = models.TextField()
    status = models.CharField(max_length=12, choices=HackStatus.choices, default=HackStatus.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    pair = models.OneToOneField("annotation.DerivedPair", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="hack")
    created_at = models.DateTimeField(auto_now_add=True)
