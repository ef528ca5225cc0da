"""``journal`` incident sink (the default): one JSON line per incident update.

The engine also keeps every incident in the state store; this file is for people
and log shippers. Default path: ``incidents.jsonl`` next to the state file.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from guardrail import IncidentSink, hookimpl


class JournalSink(IncidentSink):
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str | None = Field(None, description="JSON-lines file; default: incidents.jsonl beside the state file")

    def notify(self, incident: dict, ref: dict | None) -> dict:
        if self.settings.path:  # a path written in the plan is relative to the plan
            path = Path(self.settings.path)
            if not path.is_absolute():
                path = self.context.base_dir / path
        else:  # beside the state file, even when --state was given relative to the current directory
            path = Path(self.context.state_dir) / "incidents.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(incident, sort_keys=True, default=str) + "\n")
        return {"path": str(path), "updates": (ref or {}).get("updates", 0) + 1}


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("journal", JournalSink)
