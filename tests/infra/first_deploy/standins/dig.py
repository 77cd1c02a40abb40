"""`dig +short NS ZONE` for the rehearsal: the name servers the parent zone delegates ZONE to, as
the scenario's "delegations" says (the public DNS the preflight asks cannot be reached here)."""

import json
import os
import sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({"tool": "dig", "args": args}) + "\n")
scenario = json.loads(Path(os.environ["STANDIN_SCENARIO"]).read_text())
zone = args[-1].rstrip(".")
for server in scenario.get("delegations", {}).get(zone, []):
    print(server + ".")
