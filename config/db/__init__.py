"""Django's PostgreSQL backend with prepared statements made safe for any statement size (base.py)."""
