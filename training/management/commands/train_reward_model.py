"""python manage.py train_reward_model SET --base MODEL_PATH [--epochs N --lr X --batch-size B ...]

Queues a reward-model run on the `gpu` queue (a worker started with
`celery -A config worker -Q gpu --concurrency 1` takes it) and follows it with a progress bar until
it ends, then prints the held-out evaluation and the readiness verdict. --no-wait queues and returns.
SET is a preference set id or PROJECT:VERSION."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rewards.management.commands.export_set import find_set
from training.config import RewardRunConfig
from training.management.config_args import add_config_arguments, start_from_options
from training.management.follow import follow
from training.models import RunStatus
from training.services.reward_runs import reward_run_create

class Command(BaseCommand):
    help = "Train a Bradley-Terry reward model on a frozen preference set, on the gpu worker queue."

    def add_arguments(self, parser):
        parser.add_argument("set", help="set id, or PROJECT:VERSION")
        # Every RewardRunConfig field, with its help text (training.config); the older short names stay.
        add_config_arguments(parser, RewardRunConfig, required=frozenset({"base_model"}), aliases={
            "base_model": ("--base",), "learning_rate": ("--lr",), "center_rewards_coefficient": ("--center-rewards",),
            "use_margin": ("--margin",)})
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return")

    def handle(self, *args, **options):
        preference_set = find_set(options["set"])
        _, run = start_from_options(options, RewardRunConfig, lambda config: reward_run_create(
            project=preference_set.project, preference_set=preference_set, config=config))
        self.stdout.write(f"Run {run.pk} queued on {preference_set}.")
        if options["no_wait"]:
            return
        run = follow(run, lambda run: {"loss": f"{run.loss:.4f}", "pairs_s": f"{run.throughput or 0:.1f}"}
                     if run.loss is not None else {})
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or 'cancelled'}")
        model = run.reward_model
        evaluation = model.evaluation
        self.stdout.write(f"Reward model {model.name} at {model.path}")
        self.stdout.write(f"Held-out accuracy {evaluation['accuracy']:.3f} on {evaluation['pairs']} pairs; "
                          f"NLL {evaluation['nll']:.3f}, ECE {evaluation['ece']:.3f}, temperature {evaluation['temperature']:.2f}")
        for dimension, rows in evaluation["categories"].items():
            self.stdout.write(f"  {dimension}: " + ", ".join(f"{r['name']} {r['accuracy']:.2f} ({r['pairs']})" for r in rows))
        self.stdout.write("READY for RL" if model.ready else "NOT READY: " + "; ".join(model.failures))
