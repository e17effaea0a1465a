"""An alert hook as a user would write one for Slack or Teams: here it appends each alert to a file."""

from __future__ import annotations

import json
import os
from typing import Any


def record(alert: Any, context: Any) -> None:
    with open(os.environ["VEEAM_TEST_ALERT_HOOK_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"subject": alert.subject, "text": alert.text}) + "\n")


def recorded(path: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in open(path, encoding="utf-8")] if os.path.exists(path) else []
