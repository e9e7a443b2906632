"""Follow a run from the command line with a progress bar until it ends."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from training.models import Run
from training.selectors import run_by_id
from training.services.runs import TERMINAL, run_fresh


def follow(run: Run, postfix: Callable[[Run], dict] = lambda run: {}) -> Run:
    with tqdm(total=1, unit="step", file=sys.stderr, disable=None, desc="queued") as bar:
        while True:
            run = run_fresh(run=run_by_id(pk=run.pk))
            if run.total_steps and bar.total != run.total_steps:
                bar.total = run.total_steps
            bar.n = run.step
            bar.set_description(run.phase or run.status)
            bar.set_postfix(**postfix(run))
            bar.refresh()
            if run.status in TERMINAL:
                return run
            time.sleep(1)
