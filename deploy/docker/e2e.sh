#!/usr/bin/env bash
# make e2e: start the stack, run the drills, and always remove the stack again (on failure and on
# interruption too). The exit code is the drills' (or stack-up's, when it cannot start).
set -uo pipefail
trap 'make --no-print-directory stack-down >/dev/null 2>&1 || echo "e2e: stack-down failed" >&2' EXIT
trap 'exit 130' INT TERM
make --no-print-directory stack-up || exit $?
"${E2E_VENV:-.venvs/e2e}/bin/pytest" -c tests/e2e/pytest.ini --rootdir . tests/e2e "$@"
