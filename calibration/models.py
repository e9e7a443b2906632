"""Anchors, onboarding and annotator standing arrive with the calibration issue."""
