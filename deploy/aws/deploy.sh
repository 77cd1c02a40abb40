#!/usr/bin/env bash
# Deploy every stack of one environment, in the order of deploy/aws/stacks, through change sets.
#   deploy.sh qa|prod            create, print and execute a change set per stack, waiting for each
#   DRY_RUN=1 deploy.sh qa|prod  create and print the change sets only (they stay for review)
# Needs awscli with credentials for the target account, and a python with PyYAML
# (make deploy-aws provides both from .venvs/aws).
set -euo pipefail
env=${1:?usage: deploy.sh qa|prod}
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
stacks() { "$py" "$here/stacks.py" "$@"; }
app=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["App"])' "$here/environments/$env.json")
params_dir=$(mktemp -d)
trap 'rm -rf "$params_dir"' EXIT

# The ALB exists only once the load balancer controller has reconciled the Ingress: find it by the
# cluster tag the controller puts on it, so the ALB alarms are created from then on.
load_balancer_full_name() {
  local arns
  arns=$(aws resourcegroupstaggingapi get-resources \
    --resource-type-filters elasticloadbalancing:loadbalancer \
    --tag-filters "Key=elbv2.k8s.aws/cluster,Values=$app-$env" \
    --query 'ResourceTagMappingList[].ResourceARN' --output text)
  case $(wc -w <<<"$arns") in
    0) echo "" ;;
    1) echo "${arns#*:loadbalancer/}" ;;
    *) echo "deploy.sh: several ALBs carry elbv2.k8s.aws/cluster=$app-$env: $arns" >&2; exit 1 ;;
  esac
}

load_balancer=$(load_balancer_full_name)
stacks plan "$env" "$params_dir" "LoadBalancerFullName=$load_balancer" >"$params_dir/plan"
while read -r layer stack <&3; do
  status=$(aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].StackStatus' --output text 2>/dev/null || echo NONE)
  case $status in NONE | REVIEW_IN_PROGRESS) type=CREATE ;; *) type=UPDATE ;; esac
  change_set="deploy-$(date -u +%Y%m%d-%H%M%S)"
  echo "== $stack: $type change set $change_set"
  aws cloudformation create-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --change-set-type "$type" --template-body "file://$here/templates/$layer.yaml" \
    --parameters "file://$params_dir/$layer.json" --capabilities CAPABILITY_NAMED_IAM \
    --tags "Key=app,Value=$app" "Key=environment,Value=$env" >/dev/null
  if ! aws cloudformation wait change-set-create-complete --stack-name "$stack" --change-set-name "$change_set"; then
    reason=$(aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$change_set" \
      --query StatusReason --output text)
    if [[ $reason == *"didn't contain changes"* || $reason == *"No updates are to be performed"* ]]; then
      echo "   no changes"
      aws cloudformation delete-change-set --stack-name "$stack" --change-set-name "$change_set"
      continue
    fi
    echo "deploy.sh: change set for $stack failed: $reason" >&2
    exit 1
  fi
  aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --query 'Changes[].ResourceChange.[Action,LogicalResourceId,ResourceType,Replacement]' --output table
  if [ "${DRY_RUN:-0}" = 1 ]; then
    # Later stacks import this one's exports, which exist only once it is deployed: stop here
    # when it is new, since their change sets could not be created.
    if [ "$type" = CREATE ]; then
      echo "DRY_RUN: $stack is new; the stacks after it import its exports and are not previewed"
      break
    fi
    continue
  fi
  aws cloudformation execute-change-set --stack-name "$stack" --change-set-name "$change_set"
  aws cloudformation wait "stack-$(tr '[:upper:]' '[:lower:]' <<<"$type")-complete" --stack-name "$stack"
  echo "   $(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus' --output text)"
done 3<"$params_dir/plan"
