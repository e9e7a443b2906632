"""python manage.py launch_rl SET --policy MODEL_DIR [--algorithm grpo|ppo --reward-model ID ...]

Queues a GRPO or PPO run on the `gpu` queue (or, with --engine openrlhf|verl, hands it to the Ray
cluster at --ray-address), follows it with a progress bar until it ends, then prints the last
step's figures, the monitors' alerts and the behavioural suite per checkpoint. --no-wait queues
and returns. SET (the prompt set) is a preference set id or PROJECT:VERSION."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rewards.management.commands.export_set import find_set
from training.config import ALGORITHMS, ENGINES, RLRunConfig
from training.management.config_args import add_config_arguments, start_from_options
from training.management.follow import follow
from training.models import RunStatus
from training.selectors import run_alerts, run_suite
from training.services.rl_runs import rl_run_create

class Command(BaseCommand):
    help = "Launch a GRPO or PPO run from a prompt set with a hybrid reward (reward model + verifiers)."

    def add_arguments(self, parser):
        parser.add_argument("set", help="the prompt set: a preference set id, or PROJECT:VERSION")
        # Every RLRunConfig field, with its help text (training.config); the older short names stay.
        add_config_arguments(parser, RLRunConfig, required=frozenset({"policy_path"}),
                             choices={"algorithm": ALGORITHMS, "engine": ENGINES}, aliases={
                                 "policy_path": ("--policy",), "reference_path": ("--reference",),
                                 "reward_model_id": ("--reward-model",), "reward_weights": ("--weights",),
                                 "learning_rate": ("--lr",)})
        parser.add_argument("--override-reason", default="", help="required to use a reward model that is not ready")
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return")

    def handle(self, *args, **options):
        prompt_set = find_set(options["set"])
        config, run = start_from_options(options, RLRunConfig, lambda config: rl_run_create(
            project=prompt_set.project, prompt_set=prompt_set, config=config,
            override_reason=options["override_reason"]))
        self.stdout.write(f"Run {run.pk} ({config.algorithm.upper()}) queued on {prompt_set}.")
        if options["no_wait"]:
            return
        run = follow(run, lambda run: {"loss": f"{run.loss:.4f}"} if run.loss is not None else {})
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"Run {run.pk} {run.status}: {run.error or 'cancelled'}")
        if run.external:
            self.stdout.write(f"Ray job {run.external.get('submission_id')}: {run.external.get('state')}")
            return
        final = run.summary.get("final", {})
        self.stdout.write("Last step: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items() if isinstance(v, float)))
        self.stdout.write(f"Policy saved at {run.summary.get('final_policy')}")
        for alert in run_alerts(run=run):
            self.stdout.write(f"ALERT step {alert['step']} {alert['kind']}: {alert['message']}")
        for table in run_suite(run=run):
            self.stdout.write(f"Suite at step {table['step']}:")
            for row in table["rows"]:
                verifier = "-" if row["verifier_pass"] is None else f"{row['verifier_pass']:.2f}"
                self.stdout.write(f"  {row['dimension']}: verifier {verifier} on {row['verified']}/{row['prompts']}, "
                                  f"length {row['mean_length']:.1f}, hedging {row['hedging']:.1f}, lists "
                                  f"{row['list_rate']:.0%}" + (" WEAK: " + "; ".join(row["reasons"]) if row["weak"] else ""))
