"""One process of a multi-GPU reward-model run, started by `accelerate launch -m training.launch RUN_ID`
(training/services/reward_runs.py). Every rank trains; rank 0 reports to the run's row and writes
outcome.json for the worker that launched it, which then evaluates."""
from __future__ import annotations

import dataclasses
import json
import os
import sys


def main(run_id: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from training.backends import reward_trl
    from training.config import RewardRunConfig
    from training.models import Run
    from training.services.reward_runs import DbReporter, run_dir, training_rows

    run = Run.objects.select_related("preference_set").get(pk=run_id)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    config = RewardRunConfig.from_dict(run.config)
    outcome = reward_trl.train(rows=training_rows(preference_set=run.preference_set, split="train"), config=config,
                               output_dir=run_dir(run), reporter=DbReporter(run.pk) if rank0 else reward_trl.SilentReporter())
    if rank0:
        (run_dir(run) / "outcome.json").write_text(json.dumps(dataclasses.asdict(outcome)))


if __name__ == "__main__":
    main(int(sys.argv[1]))
