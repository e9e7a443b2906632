"""The training commands' options come from the config dataclasses: every field is an option with
its help text, and what is given reaches the config unchanged."""
from __future__ import annotations

import argparse
from dataclasses import fields

import pytest
from django.core.management.base import CommandError

from training.config import RewardRunConfig, RLRunConfig
from training.management.commands.launch_rl import Command as LaunchRl
from training.management.commands.train_reward_model import Command as TrainRewardModel
from training.management.config_args import config_values


def _parser(command) -> argparse.ArgumentParser:
    return command().create_parser("manage.py", "cmd")


@pytest.mark.parametrize("command, config_cls", [(LaunchRl, RLRunConfig), (TrainRewardModel, RewardRunConfig)])
def test_every_config_field_is_an_option_with_its_help(command, config_cls):
    parser = _parser(command)
    by_dest = {action.dest: action for action in parser._actions}
    for f in fields(config_cls):
        assert f.name in by_dest, f"{command.__module__} has no option for {f.name}"
        assert f.metadata["help"].split(".")[0] in by_dest[f.name].help.replace("%%", "%")


def test_what_is_given_reaches_the_config_and_the_rest_keeps_its_defaults():
    options = vars(_parser(TrainRewardModel).parse_args(
        ["1", "--base", "/m", "--lr", "1e-3", "--no-margin", "--max-steps", "7", "--gradient-checkpointing"]))
    config = RewardRunConfig.from_dict(config_values(options, RewardRunConfig))
    assert (config.base_model, config.learning_rate, config.use_margin, config.max_steps,
            config.gradient_checkpointing) == ("/m", 1e-3, False, 7, True)
    assert config.batch_size == RewardRunConfig().batch_size

    options = vars(_parser(LaunchRl).parse_args(
        ["1", "--policy", "/p", "--weights", "math=2,format=0.5", "--verifiers", "math", "--curriculum",
         "--allow-weak-sandbox", "--algorithm", "ppo"]))
    config = RLRunConfig.from_dict(config_values(options, RLRunConfig))
    assert config.reward_weights == {"math": 2.0, "format": 0.5}
    assert (config.verifiers, config.curriculum, config.allow_weak_sandbox, config.algorithm) == (["math"], True, True, "ppo")
    assert config.steps == RLRunConfig().steps


def test_required_and_choices_are_enforced():
    with pytest.raises(CommandError, match="--policy-path/--policy"):
        _parser(LaunchRl).parse_args(["1"])
    with pytest.raises(CommandError, match="invalid choice: 'dpo'"):
        _parser(LaunchRl).parse_args(["1", "--policy", "/p", "--algorithm", "dpo"])
