"""The code verifier's hack signals reach the monitors: refused gradings alert at once, a rising
share of suspicious code answers alerts as a trend, and the hybrid reward counts both per step.
No database."""
from __future__ import annotations

import numpy as np

from rewards import code_verifier
from training.backends.rl_common import HybridReward, step_metrics
from training.config import RLRunConfig
from training.monitors import Monitor, scan

CODE_ROW = {"prompt": [{"role": "user", "content": "add"}], "domain": "code",
            "ground_truth": "assert add(2, 3) == 5\n"}
HONEST = "```python\ndef add(a, b):\n    return a + b\n```"
HACK = "```python\nimport os\ndef add(a, b):\n    return 0\nos._exit(0)\n```"


def _rows(n, refusals=0, suspicious=None):
    return [{"step": i, "verifier_refusals": refusals if i == n - 1 else 0,
             "code_suspicious": None if suspicious is None else suspicious[i]} for i in range(n)]


def test_a_refused_grading_alerts_once_and_rearms():
    alerts = scan(_rows(5, refusals=3))
    assert [a.kind for a in alerts] == ["verifier_refused"]
    assert "bubblewrap" in alerts[0].message and alerts[0].step == 4
    monitor = Monitor()
    fired = [bool(monitor.observe({"step": i, "verifier_refusals": 1})) for i in range(5)]
    assert fired == [True, False, False, False, False]  # holding: once


def test_rising_suspicious_code_alerts_and_a_steady_share_does_not():
    rng = np.random.default_rng(0)
    steady = np.clip(0.05 + rng.normal(0, 0.02, 80), 0, 1)
    assert not [a for a in scan(_rows(80, suspicious=list(steady))) if a.kind == "suspicious_code_rising"]
    rising = np.clip(np.concatenate([np.full(40, 0.05), np.linspace(0.05, 0.6, 40)]) + rng.normal(0, 0.02, 80), 0, 1)
    alerts = [a for a in scan(_rows(80, suspicious=list(rising))) if a.kind == "suspicious_code_rising"]
    assert len(alerts) == 1 and alerts[0].step > 40


def test_the_hybrid_reward_counts_suspicious_answers_and_refusals(monkeypatch):
    config = RLRunConfig(policy_path="p", verifiers=["code"])
    batch = HybridReward(config=config)([CODE_ROW] * 4, [HONEST, HACK, HONEST, HACK])
    if code_verifier.isolation_shortfall() is None:
        assert batch.components["code"] == [1.0, 0.0, 1.0, 0.0]
        assert batch.code_refusals == 0 and batch.code_suspicious == 0.5
    row = step_metrics(batch=batch, completions=[HONEST] * 4, lengths=[5] * 4, kl=None, entropy=None)
    assert row["verifier_refusals"] == batch.code_refusals and row["code_suspicious"] == batch.code_suspicious

    monkeypatch.setattr(code_verifier, "sandbox_layers", lambda: ("process",))
    refused = HybridReward(config=config)([CODE_ROW] * 2, [HONEST, HACK])
    assert refused.components["code"] == [None, None] and refused.code_refusals == 2
    assert refused.code_suspicious is None  # nothing was graded
    allowed = HybridReward(config=RLRunConfig(policy_path="p", verifiers=["code"], allow_weak_sandbox=True))(
        [CODE_ROW], [HONEST])
    assert allowed.components["code"] == [1.0] and allowed.code_refusals == 0
