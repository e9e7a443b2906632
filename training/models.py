"""Runs (reward model, PPO, GRPO) arrive with the training issues."""
