from django.apps import AppConfig


class CalibrationConfig(AppConfig):
    name = "calibration"

    def ready(self) -> None:
        # annotation cannot import calibration: calibration plugs its standing gate into every
        # write, and its gate, hidden anchors and their scoring into the annotator's queue.
        from annotation.permissions import work_gate_register
        from annotation.services.queue import queue_hooks_register

        from .services.queue import QUEUE_HOOKS
        from .services.standing import CLAIM_READS, standing_work_check

        work_gate_register(standing_work_check, reads=CLAIM_READS)
        queue_hooks_register(QUEUE_HOOKS)
