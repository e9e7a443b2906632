from django.apps import AppConfig


class CalibrationConfig(AppConfig):
    name = "calibration"

    def ready(self) -> None:
        from annotation.permissions import work_gate_register

        from .services.standing import standing_work_check

        work_gate_register(standing_work_check)
