"""The web process of the fault tests: the test settings, with persistent, health-checked
database connections as in production (config/settings/base.py), so a restarted database is
met by connections opened before it went away."""
from config.settings.test import *  # noqa: F403

DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405
