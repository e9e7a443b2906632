import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()

# Import every URL module, and all they import (the analytics stack pulls in scipy), when the
# worker starts instead of on its first request: measured on a 2-core machine, that first request
# spent seconds importing while annotators waited (bench/annotate_load.py with --py-spy: a fifth
# of a 15 s phase's samples).
from django.urls import get_resolver  # noqa: E402

get_resolver().url_patterns
