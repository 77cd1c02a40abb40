#!/usr/bin/env bash
# Delete every stack of one environment, in the reverse order of deploy/aws/stacks.
#   CONFIRM=qa teardown.sh qa
# Kept on purpose: the CloudTrail bucket (DeletionPolicy Retain) and the database's final snapshot.
# Prod's database refuses deletion until DbDeletionProtection is set to false and deployed.
set -euo pipefail
env=${1:?usage: CONFIRM=<env> teardown.sh qa|prod}
[ "${CONFIRM:-}" = "$env" ] || { echo "teardown.sh: set CONFIRM=$env to delete every $env stack" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
for layer in $("$py" "$here/stacks.py" layers | tac); do
  stack=$("$py" "$here/stacks.py" stack-name "$env" "$layer")
  echo "== deleting $stack"
  aws cloudformation delete-stack --stack-name "$stack"
  aws cloudformation wait stack-delete-complete --stack-name "$stack"
done
