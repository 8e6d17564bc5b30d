"""`python -m api.contract`: write the HTTP contract the server serves to docs/openapi.json, the
copy kept in the repository (tests/test_api.py fails when the two differ)."""

import json
from pathlib import Path

from api.app import app

PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"

if __name__ == "__main__":
    PATH.write_text(json.dumps(app.openapi(), ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")
