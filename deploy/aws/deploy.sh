#!/usr/bin/env bash
# Deploy every stack of one environment, in the order of deploy/aws/stacks, through change sets.
# The layers on one line of that file (the cluster and the database) are deployed side by side,
# each in a background job waited for by its pid; a failure of any of them fails the deploy, and
# every failed stack is named.
#   deploy.sh qa|prod            create, print and execute a change set per stack, waiting for each
#   DRY_RUN=1 deploy.sh qa|prod  create and print the change sets only (they stay for review)
# CLOUDFORMATION_ROLE_ARN set: every change set runs as that service role (the infrastructure
# workflow's, deploy/aws/bootstrap.yaml); unset, as the caller.
# Needs awscli with credentials for the target account, and a python with PyYAML
# (make deploy-aws provides both from .venvs/aws, and runs deploy.aws.preflight first).
#
# A stack's state decides what is done with it (CloudFormation's stack status codes,
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html#cfn-console-view-stack-data-resources-status-codes):
#   none, REVIEW_IN_PROGRESS                 create it
#   *_COMPLETE (not ROLLBACK_COMPLETE)       update it
#   ROLLBACK_COMPLETE, ROLLBACK_FAILED,      a first create that failed: such a stack "can only be
#   CREATE_FAILED                            deleted", so it is deleted (waited for) and created again
#   *_IN_PROGRESS                            wait until the running operation ends, then decide
#   UPDATE_ROLLBACK_FAILED, UPDATE_FAILED,   refuse, naming the command that repairs it
#   DELETE_FAILED
set -euo pipefail
env=${1:?usage: deploy.sh qa|prod}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.." # the repository root: the deploy package's modules run from there (python -m)
py=${PYTHON:-python3}
# Seconds between polls of a stack that is busy, and the first back-off after throttling.
poll=${DEPLOY_POLL_SECONDS:-30}
backoff=${DEPLOY_BACKOFF_SECONDS:-2}
die() { echo "deploy.sh: $*" >&2; exit 1; }

# The region first, since without one every AWS call fails, each in its own words: the one rule
# (deploy/aws/awscli.py), exported under both names (awscli v1 reads AWS_DEFAULT_REGION, other
# SDKs and release.sh AWS_REGION).
region=$("$py" -m deploy.aws.awscli region 2>&1) || die "$region"
export AWS_REGION=$region AWS_DEFAULT_REGION=$region

stacks() { "$py" -m deploy.aws.stacks "$@"; }
app=$(stacks value "$env" App)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# awscli's own answer, retried with exponential back-off while AWS throttles (deploy/aws/awscli.py);
# any other error stops the deploy (expired credentials are not "no stack").
# awscli's errors go to a file of the shell reading them: stacks deployed side by side each have one
# (a redirection is expanded after the fork, so $BASHPID is read first).
aws_retrying() {
  "$py" -m deploy.aws.awscli retrying --backoff "$backoff" --errors "$work/stderr.$BASHPID" "$@"
}

# The stack's status, or NONE when CloudFormation says it does not exist.
stack_status() {
  local stack=$1 err=$work/stderr.$BASHPID
  if aws_retrying cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].StackStatus' --output text; then
    return 0
  fi
  if grep -q 'does not exist' "$err"; then echo NONE; return 0; fi
  die "cannot read the state of $stack: $(tr '\n' ' ' <"$err")"
}

# Why the last operation on a stack failed: the first failed resource events, oldest first.
failure_reasons() {
  # shellcheck disable=SC2016 # backquotes are JMESPath literals
  aws cloudformation describe-stack-events --stack-name "$1" --output text \
    --query 'StackEvents[?ends_with(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatus,ResourceStatusReason]' \
    | tac | head -5 | sed 's/^/   /' >&2 || true
}

# The status once no operation is running on the stack (bounded by DEPLOY_BUSY_TIMEOUT).
settled_status() {
  local stack=$1 status deadline=$((SECONDS + ${DEPLOY_BUSY_TIMEOUT:-3600}))
  while :; do
    status=$(stack_status "$stack") || exit 1
    [[ $status == *_IN_PROGRESS && $status != REVIEW_IN_PROGRESS ]] || break
    ((SECONDS < deadline)) || die "$stack is still $status after ${DEPLOY_BUSY_TIMEOUT:-3600} s"
    echo "   $stack is $status: waiting for it to end" >&2
    sleep "$poll"
  done
  echo "$status"
}

# CREATE or UPDATE for the stack's change set, after clearing a failed first create.
change_set_type() {
  local stack=$1 status
  status=$(settled_status "$stack")
  case $status in
    NONE | REVIEW_IN_PROGRESS | DELETE_COMPLETE) echo CREATE ;;
    ROLLBACK_COMPLETE | ROLLBACK_FAILED | CREATE_FAILED)
      echo "   $stack is $status (its first create failed); it can only be deleted:" >&2
      failure_reasons "$stack"
      if [ "${DRY_RUN:-0}" = 1 ]; then
        die "DRY_RUN: $stack would be deleted and created again; stopping here"
      fi
      echo "   deleting $stack to create it again" >&2
      aws cloudformation delete-stack --stack-name "$stack"
      aws cloudformation wait stack-delete-complete --stack-name "$stack" \
        || die "$stack could not be deleted; see its events in the CloudFormation console"
      echo CREATE
      ;;
    UPDATE_ROLLBACK_FAILED)
      die "$stack is UPDATE_ROLLBACK_FAILED: fix the cause shown in its events, then run" \
        "'aws cloudformation continue-update-rollback --stack-name $stack' and deploy again" ;;
    UPDATE_FAILED)
      die "$stack is UPDATE_FAILED: run 'aws cloudformation rollback-stack --stack-name $stack', then deploy again" ;;
    DELETE_FAILED)
      die "$stack is DELETE_FAILED: finish deleting it (make teardown-aws), then deploy again" ;;
    *_COMPLETE) echo UPDATE ;;
    *) die "$stack is in a state this script does not know: $status" ;;
  esac
}

# The ALB exists only once the load balancer controller has reconciled the Ingress: find it by the
# cluster tag the controller puts on it, so the ALB alarms are created from then on.
load_balancer_full_name() {
  local arns err=$work/stderr.$BASHPID
  aws_retrying resourcegroupstaggingapi get-resources \
    --resource-type-filters elasticloadbalancing:loadbalancer \
    --tag-filters "Key=elbv2.k8s.aws/cluster,Values=$app-$env" \
    --query 'ResourceTagMappingList[].ResourceARN' --output text >"$work/arns" \
    || die "cannot look up the ALB: $(tr '\n' ' ' <"$err")"
  arns=$(<"$work/arns")
  case $(wc -w <<<"$arns") in
    0) echo "" ;;
    1) echo "${arns#*:loadbalancer/}" ;;
    *) die "several ALBs carry elbv2.k8s.aws/cluster=$app-$env: $arns" ;;
  esac
}

# One stack through a change set; exits (under set -e: never call it in a condition) on failure. Under DRY_RUN, a new stack leaves $work/<layer>.new: the stacks
# of later steps import its exports, which exist only once it is deployed.
deploy_stack() {
  local layer=$1 stack=$2 type change_set reason
  type=$(change_set_type "$stack")
  # Named after its layer too: moto (the rehearsal's CloudFormation) finds change sets by name alone.
  change_set="deploy-$layer-$(date -u +%Y%m%d-%H%M%S)"
  echo "== $stack: $type change set $change_set"
  aws cloudformation create-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --change-set-type "$type" --template-body "file://$here/templates/$layer.yaml" \
    --parameters "file://$work/$layer.json" --capabilities CAPABILITY_NAMED_IAM \
    ${CLOUDFORMATION_ROLE_ARN:+--role-arn "$CLOUDFORMATION_ROLE_ARN"} \
    --tags "Key=app,Value=$app" "Key=environment,Value=$env" >/dev/null
  if ! aws cloudformation wait change-set-create-complete --stack-name "$stack" --change-set-name "$change_set"; then
    reason=$(aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$change_set" \
      --query StatusReason --output text)
    if [[ $reason == *"didn't contain changes"* || $reason == *"No updates are to be performed"* ]]; then
      echo "   $stack: no changes"
      aws cloudformation delete-change-set --stack-name "$stack" --change-set-name "$change_set"
      return 0
    fi
    die "change set for $stack failed: $reason"
  fi
  aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$change_set" \
    --query 'Changes[].ResourceChange.[Action,LogicalResourceId,ResourceType,Replacement]' --output table
  if [ "${DRY_RUN:-0}" = 1 ]; then
    if [ "$type" = CREATE ]; then touch "$work/$layer.new"; fi
    return 0
  fi
  aws cloudformation execute-change-set --stack-name "$stack" --change-set-name "$change_set"
  if ! aws cloudformation wait "stack-$(tr '[:upper:]' '[:lower:]' <<<"$type")-complete" --stack-name "$stack"; then
    echo "deploy.sh: $stack did not reach ${type}_COMPLETE; it is $(stack_status "$stack"):" >&2
    failure_reasons "$stack"
    die "fix the cause above and $retry"
  fi
  echo "   $stack: ${type}_COMPLETE"
}

retry="run make deploy-aws ENV=$env again (a failed first create is deleted and created again)"
load_balancer=$(load_balancer_full_name)
stacks plan "$env" "$work" "LoadBalancerFullName=$load_balancer" >"$work/plan"
while read -r -a step <&3; do
  # "<layer> <stack>" pairs: one is deployed here, several side by side, each job waited for by
  # its pid so that every failure is seen.
  if ((${#step[@]} == 2)); then
    deploy_stack "${step[0]}" "${step[1]}"
  else
    pids=() failed=()
    for ((i = 0; i < ${#step[@]}; i += 2)); do
      echo "== ${step[i + 1]}: deployed side by side with the other stacks of its step"
      deploy_stack "${step[i]}" "${step[i + 1]}" &
      pids+=("$!")
    done
    for ((i = 0; i < ${#pids[@]}; i++)); do
      wait "${pids[i]}" || failed+=("${step[2 * i + 1]}")
    done
    ((${#failed[@]} == 0)) || die "${failed[*]} failed; fix the causes above and $retry"
  fi
  if [ "${DRY_RUN:-0}" = 1 ] && compgen -G "$work/*.new" >/dev/null; then
    echo "DRY_RUN: new stacks ($(basename -s .new "$work"/*.new | tr '\n' ' ')): the stacks after" \
      "them import their exports and are not previewed"
    break
  fi
done 3<"$work/plan"
