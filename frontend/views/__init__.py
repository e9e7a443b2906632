"""The htmx pages, one module per area. No business logic: each view checks the role, calls a
service or selector, renders. frontend.urls imports the area modules directly; nothing is
re-exported here.

- common: what several areas share (the project for a role, time on item, the lead redirect).
- home: the project list.
- labelling: the annotator's work page: comparisons, calibration questions, ranking, expert
  rewrites (and their revision), adversarial negatives; what comes next.
- lead: the lead's project page (spec, imports) and the export page.
- calibration: standing, calibration policy and alerts, overrides, anchors and the calibration set.
- analytics: the agreement and bias dashboard.
- designed: designed data for leads and reviewers: rewrite review, the dataset view, items, bad
  cases, skills.
- sets: preference sets (freeze, one set, freeze progress).
- training: training runs and the reward-model registry.
- account: API tokens and the django-axes lockout page.

Area modules import `common` and never each other.
"""
