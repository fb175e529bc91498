"""Where the project's shared fixtures and data sets live: ``shared/`` beside the checkout
(as CI lays it out), or ``OMOHUB_SHARED_DIR``. Tests that need it fail loudly if it is gone."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [Path(os.environ["OMOHUB_SHARED_DIR"])] if os.environ.get("OMOHUB_SHARED_DIR") else []
CANDIDATES += [ROOT.parent / "shared", Path("/work/shared")]
SHARED = next((path for path in CANDIDATES if (path / "fixtures").is_dir()), CANDIDATES[0])
FIXTURES = SHARED / "fixtures"
DATASETS = SHARED / "datasets"
