"""The dbt project that turns loaded FullStory exports into analytics models (docs/analytics.md).

It ships inside the Python package so `fullstory-pipeline models` finds it wherever the package
is installed; dbt's own files (target/, logs/) are written elsewhere (pipelines/models.py).
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
PROFILES_DIR = PROJECT_DIR / "profiles"
