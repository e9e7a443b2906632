"""Generators for tests, benchmarks and the demo seed: preference pairs whose true rule is known
(synthetic.py) and tiny models built locally (tiny.py). Production code never imports this
package; only the demo seed (training/management/commands/seed_demo.py) does (tests/test_house_plan.py
checks)."""
