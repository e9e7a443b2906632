"""Errors the calibration services raise; the API and pages turn them into clear answers."""
from __future__ import annotations

from annotation.errors import NotAllowed


class CalibrationRequired(NotAllowed):
    """An annotator who is not `active` asked for live work."""

    MESSAGES = {
        "calibrating": "Finish the calibration round before live work.",
        "needs_retraining": "Your lead has to assign a new calibration round before you continue.",
        "excluded": "You are not taking live work in this project; ask your lead.",
    }

    def __init__(self, state: str):
        super().__init__(self.MESSAGES.get(state, "Live work is not open to you in this project."))
        self.state = state
        self.extra = {"standing": state}
