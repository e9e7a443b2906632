"""Generators for tests, benchmarks and the demo seed: a simulated annotator pool with planted
biases (simulation.py) and its storage as real rows (simulation_store.py). Production code never
imports this package; only the demo seed (training/management/commands/seed_demo.py) does
(tests/test_house_plan.py checks)."""
