"""python manage.py train_reward_model SET --base MODEL_PATH [--epochs N --lr X --batch-size B ...]

Queues a reward-model run on the `gpu` queue (a worker started with
`celery -A config worker -Q gpu --concurrency 1` takes it) and follows it with a progress bar until
it ends, then prints the held-out evaluation and the readiness verdict. --no-wait queues and returns.
SET is a preference set id or PROJECT:VERSION."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rewards.management.commands.export_set import find_set
from training.config import RewardRunConfig
from training.management.follow import follow
from training.models import RunStatus
from training.services.reward_runs import RunConfigError, reward_run_create

OPTIONS = {  # option -> config field
    "epochs": "epochs", "max_steps": "max_steps", "lr": "learning_rate", "batch_size": "batch_size",
    "max_length": "max_length", "center_rewards": "center_rewards_coefficient", "seed": "seed",
    "checkpoint_every": "checkpoint_every", "resume_from": "resume_from",
}


class Command(BaseCommand):
    help = "Train a Bradley-Terry reward model on a frozen preference set, on the gpu worker queue."

    def add_arguments(self, parser):
        parser.add_argument("set", help="set id, or PROJECT:VERSION")
        parser.add_argument("--base", required=True, help="a local Hugging Face model directory")
        parser.add_argument("--epochs", type=float)
        parser.add_argument("--max-steps", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--max-length", type=int)
        parser.add_argument("--center-rewards", type=float, help="reward centring coefficient (0.01 is usual)")
        parser.add_argument("--no-margin", action="store_true", help="ignore the pairs' strength margins")
        parser.add_argument("--gradient-checkpointing", action="store_true")
        parser.add_argument("--checkpoint-every", type=int)
        parser.add_argument("--resume-from", help="a checkpoint directory of an earlier run")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return")

    def handle(self, *args, **options):
        preference_set = find_set(options["set"])
        values = {"base_model": options["base"], "use_margin": not options["no_margin"],
                  "gradient_checkpointing": options["gradient_checkpointing"]}
        values.update({field: options[name] for name, field in OPTIONS.items() if options.get(name) is not None})
        try:
            config = RewardRunConfig.from_dict(values)
            run = reward_run_create(project=preference_set.project, preference_set=preference_set, config=config)
        except RunConfigError as exc:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
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
