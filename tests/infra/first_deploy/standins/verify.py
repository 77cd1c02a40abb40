"""`SUPPLY_PYTHON -m deploy.image.verify IMAGE --env ENV --commit SHA` for the rehearsal: moto's
ECR serves no registry API, so no signature can be read there. This answers as the real module
does (deploy/image/verify.py: exit 1 and a `verify: refused` line, or exit 0) for the digests
the scenario's "unsigned" list names; make verify-signing runs the real verification against a
real registry, and tests/infra/supply tests it."""

import json
import os
import sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps({"tool": "verify", "args": args}) + "\n")
if args[:2] != ["-m", "deploy.image.verify"]:
    sys.exit(f"supply-python stand-in: only runs deploy.image.verify, not {args}")
image = args[2]
scenario = json.loads(Path(os.environ["STANDIN_SCENARIO"]).read_text())
if image.rsplit("@", 1)[-1] in scenario.get("unsigned", []):
    sys.exit(f"verify: refused {image}: {image.split('@')[0]}@... is not signed (stand-in)")
print(f"verify: {image} signed by our release workflow (stand-in)")
