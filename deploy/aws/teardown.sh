#!/usr/bin/env bash
# Delete one environment, in the order a real account needs:
#   CONFIRM=qa teardown.sh qa
# 1. What the controllers created outside CloudFormation: the Ingress, so that the AWS Load
#    Balancer Controller deletes the ALB, its target groups and security groups (they hold
#    interfaces in the VPC, which would block the network stack); then the ExternalDNS records
#    left for the domain (a record pointing at a deleted ALB could be taken over); then the
#    platform's volumes: Prometheus's and Alertmanager's claims, whose EBS volumes outlive the
#    cluster unless their PVCs go first (reclaimPolicy Delete deletes a volume when its claim
#    goes, https://kubernetes.io/docs/concepts/storage/persistent-volumes/#delete, and only while
#    the EBS CSI driver still runs; a claim in use is kept until its pod stops).
# 2. The images in the ECR repository (CloudFormation cannot delete a repository with images).
# 3. The stacks, in the reverse order of deploy/aws/stacks; a missing one is skipped, so a
#    teardown that stopped half-way can be run again.
# Kept on purpose, and listed at the end: resources whose DeletionPolicy is Retain or Snapshot
# (the CloudTrail bucket, the keys that keep it and the snapshot readable, the final snapshot).
# Prod's database refuses deletion until DbDeletionProtection=false is deployed: checked first.
set -euo pipefail
env=${1:?usage: CONFIRM=<env> teardown.sh qa|prod}
[ "${CONFIRM:-}" = "$env" ] || { echo "teardown.sh: set CONFIRM=$env to delete every $env stack" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.." # the repository root: the deploy package's modules run from there (python -m)
py=${PYTHON:-python3}
kubectl=${KUBECTL:-kubectl}
# Seconds to wait for the controllers to remove what they created.
controller_timeout=${TEARDOWN_CONTROLLER_TIMEOUT:-300}
poll=${TEARDOWN_POLL_SECONDS:-10}
die() { echo "teardown.sh: $*" >&2; exit 1; }

# The region first, since without one every AWS call fails, each in its own words: the one rule
# (deploy/aws/awscli.py), exported under both names (awscli v1 reads AWS_DEFAULT_REGION, other
# SDKs and release.sh AWS_REGION).
region=$("$py" -m deploy.aws.awscli region 2>&1) || die "$region"
export AWS_REGION=$region AWS_DEFAULT_REGION=$region
stack_name() { "$py" -m deploy.aws.stacks stack-name "$env" "$1"; }
value() { "$py" -m deploy.aws.stacks value "$env" "$1"; }
app=$(value App)
cluster_tag="elbv2.k8s.aws/cluster,Values=$app-$env"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A stack's output ("" when the stack or the output does not exist) and its status (NONE when the
# stack does not exist), from deploy/aws/stacks.py: any other failure of the call (expired
# credentials, no access, throttling past the retries) stops the teardown with its reason, rather
# than passing for "no stack". Called as `x=$(...)`, so that the exit stops this script (set -e).
stopped="stopped before deleting anything more"
output() { "$py" -m deploy.aws.stacks output "$env" "$1" "$2" || die "$stopped"; }
status() { "$py" -m deploy.aws.stacks status "$env" "$1" || die "$stopped"; }

# Poll "$@" until it prints nothing, for at most controller_timeout seconds.
until_empty() {
  local what=$1 deadline=$((SECONDS + controller_timeout)) left
  shift
  while left=$("$@") && [ -n "$left" ]; do
    ((SECONDS < deadline)) || die "$what still there after ${controller_timeout}s: $left"
    sleep "$poll"
  done
}
load_balancers() {
  aws resourcegroupstaggingapi get-resources --resource-type-filters elasticloadbalancing:loadbalancer \
    --tag-filters "Key=$cluster_tag" --query 'ResourceTagMappingList[].ResourceARN' --output text
}
controller_security_groups() {
  aws ec2 describe-security-groups --filters "Name=tag-key,Values=elbv2.k8s.aws/cluster" \
    "Name=tag:elbv2.k8s.aws/cluster,Values=$app-$env" --query 'SecurityGroups[].GroupId' --output text
}

# The PVs still bound to a claim of namespace monitoring: their EBS volumes still exist.
monitoring_volumes() {
  $kubectl get pv -o json | "$py" -c '
import json, sys
for pv in json.load(sys.stdin).get("items", []):
    if pv.get("spec", {}).get("claimRef", {}).get("namespace") == "monitoring":
        print(pv["metadata"]["name"], pv["spec"].get("csi", {}).get("volumeHandle", ""))'
}

# 0. Prod's database: refuse before deleting anything rather than half-way.
db=$(output data DbInstanceId)
if [ -n "$db" ] && [ "$(aws rds describe-db-instances --db-instance-identifier "$db" \
  --query 'DBInstances[0].DeletionProtection' --output text 2>/dev/null)" = True ]; then
  die "database $db has deletion protection: set DbDeletionProtection=false in" \
    "deploy/aws/environments/$env.json, run make deploy-aws ENV=$env, then tear down"
fi

# 1. The controllers' resources, while the cluster (and its controllers) still run.
cluster=$(output cluster ClusterName)
if [ -n "$cluster" ]; then
  echo "== $cluster: deleting the Ingress (the load balancer controller deletes the ALB)"
  aws eks update-kubeconfig --name "$cluster" >/dev/null
  $kubectl -n registro delete ingress --all --ignore-not-found --wait=false
  $kubectl -n registro wait --for=delete ingress --all --timeout="${controller_timeout}s" \
    || die "the Ingress is still there (its finalizer waits for the controller: is it running," \
      "and is the ALB's deletion protection off?)"
  until_empty "ALB of $app-$env" load_balancers
  until_empty "security groups of the ALB" controller_security_groups
  echo "== $cluster: deleting the platform's volumes (Prometheus, Alertmanager)"
  # The workloads first (their pods hold the claims), then the claims; the PVs (and so the EBS
  # volumes) go as the driver deletes them.
  $kubectl -n monitoring delete statefulset,deployment --all --ignore-not-found --cascade=foreground
  $kubectl -n monitoring delete pvc --all --ignore-not-found --wait=false
  until_empty "volumes of the monitoring namespace" monitoring_volumes
fi
zone=$(value HostedZoneId) domain=$(value DomainName)
if [ -n "$zone" ] && [ -n "$domain" ]; then
  # ExternalDNS owns a name through a TXT record "heritage=external-dns,..." beside it. It may
  # still be deleting them itself (the Ingress is gone, policy sync): a batch that names a record
  # it deleted first fails whole (InvalidChangeBatch "Tried to delete resource record set ... but
  # it was not found"; a change batch is all or nothing,
  # https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html):
  # then read the zone again and delete what is left.
  for attempt in 1 2 3 4 5; do
    aws route53 list-resource-record-sets --hosted-zone-id "$zone" --output json \
      | "$py" -c '
import json, sys
domain = sys.argv[1].rstrip(".") + "."
records = json.load(sys.stdin)["ResourceRecordSets"]
def ends(name): return name == domain or name.endswith("." + domain)
def owner_of(name):  # the TXT registry names its record <type>-<name>, or <name> (older format)
    kind, _, rest = name.partition("-")
    return rest if kind in ("a", "aaaa", "cname") and ends(rest) else name
owned = {r["Name"] for r in records if r["Type"] == "TXT" and ends(owner_of(r["Name"]))
         and any("heritage=external-dns" in v["Value"] for v in r.get("ResourceRecords", []))}
names = owned | {owner_of(n) for n in owned}
changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in records
           if r["Name"] in names and (r["Type"] in ("A", "AAAA", "CNAME", "TXT"))]
if changes:
    print(json.dumps({"Changes": changes}))
' "$domain" >"$work/records.json"
    [ -s "$work/records.json" ] || break
    echo "== $zone: deleting the records ExternalDNS left for $domain"
    if aws route53 change-resource-record-sets --hosted-zone-id "$zone" \
      --change-batch "file://$work/records.json" >/dev/null 2>"$work/records.err"; then
      break
    fi
    grep -q "but it was not found" "$work/records.err" || die "$(cat "$work/records.err")"
    ((attempt < 5)) || die "the records of $domain keep changing: $(cat "$work/records.err")"
    echo "   ExternalDNS deleted some of them meanwhile: reading the zone again"
    sleep "$poll"
  done
fi

# 2. The repository's images.
repository=$(output cluster RepositoryUri)
if [ -n "$repository" ]; then
  aws ecr list-images --repository-name "${repository#*/}" --query 'imageIds[].imageDigest' \
    --output text | tr '\t' '\n' | grep . | sort -u | sed 's/^/imageDigest=/' >"$work/images" || true
  if [ -s "$work/images" ]; then
    echo "== ${repository#*/}: deleting $(wc -l <"$work/images") images"
    xargs -n 100 aws ecr batch-delete-image --repository-name "${repository#*/}" --image-ids \
      <"$work/images" >/dev/null
  fi
fi

# 3. The stacks, noting what each keeps.
: >"$work/kept"
for layer in $("$py" -m deploy.aws.stacks layers | tac); do
  stack=$(stack_name "$layer")
  state=$(status "$layer")
  [ "$state" != NONE ] || { echo "== $stack: not there"; continue; }
  "$py" -m deploy.aws.retained "$layer" | while read -r logical policy; do
    physical=$(aws cloudformation describe-stack-resource --stack-name "$stack" \
      --logical-resource-id "$logical" --query 'StackResourceDetail.[ResourceType,PhysicalResourceId]' \
      --output text 2>/dev/null || true)
    [ -n "$physical" ] && echo "$stack $logical $policy $physical" >>"$work/kept"
  done
  echo "== deleting $stack"
  aws cloudformation delete-stack --stack-name "$stack"
  if ! aws cloudformation wait stack-delete-complete --stack-name "$stack"; then
    # shellcheck disable=SC2016 # backquotes are JMESPath literals
    aws cloudformation describe-stack-events --stack-name "$stack" --output text \
      --query 'StackEvents[?ResourceStatus==`DELETE_FAILED`].[LogicalResourceId,ResourceStatusReason]' \
      | head -5 >&2 || true
    die "$stack could not be deleted (reasons above); fix them and run this again"
  fi
done

echo "== $env deleted. Kept on purpose (DeletionPolicy), delete by hand when no longer needed:"
while read -r stack logical policy type physical; do
  case $policy in
    Snapshot) echo "   $type $physical ($stack $logical): its final snapshot," \
      "aws rds describe-db-snapshots --db-instance-identifier $physical --snapshot-type manual" ;;
    *) echo "   $type $physical ($stack $logical, $policy)" ;;
  esac
done <"$work/kept"
