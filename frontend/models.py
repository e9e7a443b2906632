"""frontend holds views and templates only: no models."""
