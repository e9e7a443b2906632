"""Preference sets arrive with the preference-set issue; export formats live in formats.py."""
