import os
from importlib import import_module

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()

# Import what the first requests would otherwise import while annotators wait, when the worker
# starts: every URL module and all they import (the analytics stack pulls in scipy), and the cache
# client's library (Redis, for the API throttles). Measured on a 2-core machine with
# bench/annotate_load.py --py-spy: a fifth of a 15 s phase's samples were those imports.
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns
if "redis" in settings.CACHES["default"]["BACKEND"].lower():
    import_module("redis")
