"""Functions that write. One path per action: the REST API and the htmx views both call these."""
