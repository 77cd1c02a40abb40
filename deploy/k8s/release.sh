#!/usr/bin/env bash
# Releases of registro to one environment (qa or prod), in the order that keeps them safe.
#
#   deploy ENV TAG      the whole release (make deploy-k8s): read the stacks' outputs, pin the
#                       image pushed as TAG by its digest, verify its signature and provenance
#                       (our release workflow, this commit), render, apply, wait for the rollout
#   bootstrap ENV       once per cluster after the stacks, as a cluster administrator: the
#                       namespace (cluster-scoped, with its Pod Security and readiness-gate labels),
#                       which releases never touch, then the platform (deploy/k8s/platform): its
#                       manifests, then its Helm charts in the order platform/charts lists, then
#                       the admission policies of the service's images (platform/policies)
#   rollback ENV [TAG]  abort a canary in progress (traffic back to stable at once) and go back
#                       to the stable revision, or put a completed release back on the previous
#                       revision (make rollback-k8s); with TAG, only if the Rollout runs that
#                       release (the pipeline's rollback)
#   outputs ENV         print the overlay's CloudFormation outputs as KEY=VALUE, read from the
#                       outputs of the environment's stacks (python -m deploy.aws.stacks outputs;
#                       AwsRegion: the region deploy/aws/awscli.py works out, as the AWS CLI does)
#   output ENV KEY      print one of them
#   render ENV IMAGE OUTPUTS DIR
#                       build the overlay with those outputs and IMAGE (repository@sha256:...)
#                       into DIR/manifests.yaml, touching nothing in deploy/k8s (make verify-k8s
#                       runs this with the committed placeholder outputs)
#   apply DIR           apply DIR/manifests.yaml: everything but the workload, check that the ALB
#                       serves behind the edge stack's web ACL, then the migration Job (waited
#                       for), then the Rollout (waited for)
#
# Needs kubectl within one minor of the clusters' Kubernetes (K8S_VERSION in the Makefile; the
# version skew policy: https://kubernetes.io/releases/version-skew-policy/#kubectl), the AWS CLI
# and python3; bootstrap also helm (make helm). Nothing here names a kubectl version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${RELEASE_WORK:-$root/.work/release}
case $work in /*) ;; *) work=$PWD/$work ;; esac
namespace=registro
rollout=registro
kubectl=${KUBECTL:-kubectl}
helm=${HELM:-helm}

die() { echo "release.sh: $*" >&2; exit 1; }
# A module of the deploy package (deploy/k8s/tools, deploy/aws), run from the repository root.
ops() { (cd "$root" && exec python3 -m "$@"); }
k() { $kubectl -n "$namespace" "$@"; }

# The overlay's outputs as KEY=VALUE lines: the keys its committed cloudformation-outputs.env
# names (one list), their values from the environment's stacks and AwsRegion (deploy/aws/stacks.py;
# a stack that cannot be read, not deployed yet or no access, stops the release naming it).
outputs() {
  local env=$1 all key value errors
  errors=$(mktemp)
  if ! all=$(ops deploy.aws.stacks outputs "$env" 2>"$errors"); then
    all=$(cat "$errors") # the reason, read before the file goes: die exits
    rm -f "$errors"
    die "$all"
  fi
  rm -f "$errors"
  for key in $(grep -oE '^[A-Za-z0-9]+=' "$here/overlays/$env/cloudformation-outputs.env" | tr -d '='); do
    value=$(awk -v k="$key" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' <<<"$all")
    [ -n "$value" ] || die "no stack of registro-$env outputs $key"
    echo "$key=$value"
  done
}

output() { grep -E "^$2=" "$1" | cut -d= -f2-; }

render() {
  local env=$1 image=$2 outputs_file=$3 dir=$4
  [ -d "$here/overlays/$env" ] || die "no overlay '$env'"
  [[ $image =~ ^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$ ]] \
    || die "image must be repository@sha256:<digest>, got '$image'"
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$here" "$dir/k8s"
  cp "$outputs_file" "$dir/k8s/overlays/$env/cloudformation-outputs.env"
  cp "$outputs_file" "$dir/cloudformation-outputs.env" # apply's checks read it
  cat > "$dir/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - k8s/overlays/$env
images:
  - name: registro
    newName: ${image%@*}
    digest: ${image#*@}
YAML
  $kubectl kustomize "$dir" > "$dir/manifests.yaml"
  echo "rendered $dir/manifests.yaml"
}

# Wait until the Rollout has taken in its latest spec and is Healthy; fail as soon as it is
# Degraded (an aborted canary is Degraded) or paused by an inconclusive analysis: Argo Rollouts
# pauses the Rollout when an AnalysisRun is Inconclusive (argo-rollouts docs/features/analysis.md,
# "Inconclusive Runs") and reports the pause's reason as the status message
# (utils/rollout/rolloututil.go CalculateRolloutPhase); the canary's own timed pause steps
# (CanaryPauseStep) are waited through.
wait_rollout() {
  local deadline=$((SECONDS + ${ROLLOUT_TIMEOUT:-2400})) status phase generation observed message
  while :; do
    status=$(k get rollout "$rollout" -o jsonpath='{.status.phase}|{.metadata.generation}|{.status.observedGeneration}|{.status.message}')
    IFS='|' read -r phase generation observed message <<<"$status"
    echo "rollout: ${status//|/ }"
    if [ "$generation" = "$observed" ]; then
      case $phase in
        Healthy) return 0 ;;
        Degraded) die "rollout degraded: $message" ;;
        Paused)
          [ "$message" != InconclusiveAnalysisRun ] \
            || die "rollout paused: an analysis was inconclusive (InconclusiveAnalysisRun:" \
              "no data to judge, see docs/delivery.md); the canary still takes its share of" \
              "traffic: make rollback-k8s ENV=... to abort, or promote it by hand" ;;
      esac
    fi
    ((SECONDS < deadline)) || die "rollout not healthy after ${ROLLOUT_TIMEOUT:-2400} s"
    sleep "${ROLLOUT_POLL_SECONDS:-15}"
  done
}

# Force both ExternalSecrets to read Secrets Manager now, and wait for that read: a rotated RDS
# password would otherwise reach the Secrets only at the next refreshInterval (1h). External
# Secrets refreshes an ExternalSecret whose annotations change (external-secrets.io FAQ, "Can I
# manually trigger a secret refresh?": `kubectl annotate es NAME force-sync=$(date +%s)
# --overwrite`); status.refreshTime says when it last read (same FAQ).
sync_secrets() {
  local name before state deadline
  for name in registro-database registro-database-owner; do
    before=$(k get externalsecret "$name" -o jsonpath='{.status.refreshTime}')
    sleep 1 # refreshTime has a resolution of a second: the next read must differ from `before`
    k annotate externalsecret "$name" "force-sync=$(date +%s)" --overwrite >/dev/null
    deadline=$((SECONDS + ${SECRET_TIMEOUT:-120}))
    while :; do
      state=$(k get externalsecret "$name" -o json | python3 -c '
import json, sys
status = json.load(sys.stdin).get("status", {})
ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
print(status.get("refreshTime", ""),
      *(":".join((c.get("status", ""), c.get("reason", ""), c.get("message", ""))) for c in ready[:1]))')
      case $state in
        "$before "*) ;;
        *" True:"*) echo "externalsecret/$name: read from Secrets Manager at ${state%% *}"; break ;;
        *" False:"*) die "externalsecret/$name cannot read its secret: ${state#* False:}" ;;
      esac
      ((SECONDS < deadline)) || die "externalsecret/$name not refreshed after ${SECRET_TIMEOUT:-120} s: $state"
      sleep 2
    done
  done
}

# Wait until the Job has ended, Complete or Failed (its terminal conditions:
# https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions):
# `kubectl wait --for=condition=Complete` alone would wait out its whole timeout on a failure.
# Prints Complete, or Failed and the condition's reason and message.
wait_job() {
  local name=$1 deadline=$((SECONDS + $2)) outcome
  while :; do
    outcome=$(k get job "$name" -o json | python3 -c '
import json, sys
for c in json.load(sys.stdin).get("status", {}).get("conditions", []):
    if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
        print(c["type"], c.get("reason", ""), c.get("message", ""))
        break')
    [ -z "$outcome" ] || { echo "$outcome"; return 0; }
    ((SECONDS < deadline)) || { echo "Unfinished after $2 s"; return 0; }
    sleep "${JOB_POLL_SECONDS:-5}"
  done
}

# Synthetic traffic through the public name while the canary is judged (docs/delivery.md, "Quiet
# canaries"): read-only requests at RELEASE_TRAFFIC_RATE per second (0: none), of which the ALB
# gives the canary its weight's share. Stopped when the release ends.
traffic_pid=
start_traffic() {
  local manifests=$1 url=${RELEASE_TRAFFIC_URL:-} rate=${RELEASE_TRAFFIC_RATE:-2}
  if [ -z "$url" ]; then
    url=https://$(sed -nE 's/^ *external-dns\.alpha\.kubernetes\.io\/hostname: *"?([^" ]+)"?$/\1/p' "$manifests" | head -1)
  fi
  [ "$rate" != 0 ] || { echo "traffic: none (RELEASE_TRAFFIC_RATE=0)"; return 0; }
  # One subshell that becomes python (not ops, whose own subshell would be the pid killed).
  (cd "$root" && exec python3 -m deploy.k8s.tools.traffic "$url" --rate "$rate" \
    --seconds "$((${ROLLOUT_TIMEOUT:-2400} + 60))") &
  traffic_pid=$!
  trap stop_traffic EXIT
}
stop_traffic() {
  [ -z "$traffic_pid" ] || kill "$traffic_pid" 2>/dev/null || true
  traffic_pid=
}

# The ARN of the ALB, whose end app/<name>/<id> is the CloudWatch dimension of the canary's
# load-balancer-errors metric: the ALB the Ingress names (alb.ingress.kubernetes.io/load-balancer-name), found by that name
# (https://docs.aws.amazon.com/cli/latest/reference/elbv2/describe-load-balancers.html). The
# controller creates it from the Ingress: on a first deploy it may not exist yet, so wait for it.
load_balancer() {
  local manifests=$1 errors=$2 name arn deadline=$((SECONDS + ${ALB_TIMEOUT:-300}))
  name=$(sed -nE 's/^ *alb\.ingress\.kubernetes\.io\/load-balancer-name: *"?([^" ]+)"?$/\1/p' "$manifests" | head -1)
  [ -n "$name" ] || die "the Ingress names no ALB (alb.ingress.kubernetes.io/load-balancer-name)"
  while ! arn=$(aws elbv2 describe-load-balancers --names "$name" \
      --query 'LoadBalancers[0].LoadBalancerArn' --output text 2>"$errors"); do
    grep -q LoadBalancerNotFound "$errors" || die "cannot look up the ALB $name: $(cat "$errors")"
    ((SECONDS < deadline)) \
      || die "no ALB $name after ${ALB_TIMEOUT:-300} s (kubectl -n $namespace describe ingress: the load balancer controller's events)"
    sleep "${ALB_POLL_SECONDS:-10}"
  done
  [[ $arn =~ :loadbalancer/app/"$name"/[0-9a-f]+$ ]] || die "ALB $name has an unexpected ARN '$arn'"
  echo "$arn"
}

# The ALB must serve behind the edge stack's web ACL (its output WebAclArn, which the Ingress
# names in alb.ingress.kubernetes.io/wafv2-acl-arn). The controller associates it after creating
# the ALB, and an ALB it could not associate serves without WAF all the same: wait for the
# association, then stop on none or another. GetWebACLForResource answers a null WebACL for a
# resource with none (https://docs.aws.amazon.com/waf/latest/APIReference/API_GetWebACLForResource.html),
# which --output text prints as None; the controller reads it the same way (v3.5.0
# pkg/deploy/wafv2/web_acl_association_manager.go, GetAssociatedWebACL: a nil WebACL is none).
check_web_acl() {
  local arn=$1 expected=$2 errors=$3 found deadline=$((SECONDS + ${WAF_TIMEOUT:-120}))
  while :; do
    found=$(aws wafv2 get-web-acl-for-resource --resource-arn "$arn" \
      --query 'WebACL.ARN' --output text 2>"$errors") \
      || die "cannot read the web ACL of ALB $arn: $(cat "$errors")"
    [ "$found" != "$expected" ] || { echo "waf: ALB served behind $expected"; return 0; }
    ((SECONDS < deadline)) \
      || die "ALB $arn serves with web ACL '${found/#None/none}', not the edge stack's WebAclArn" \
        "$expected, after ${WAF_TIMEOUT:-120} s: its requests skip WAF's rules. The load" \
        "balancer controller's events (kubectl -n $namespace describe ingress) say why; the" \
        "release stops before the migration, the running version is untouched"
    sleep "${WAF_POLL_SECONDS:-10}"
  done
}

apply() {
  local manifests=$1/manifests.yaml outcome alb
  [ -f "$manifests" ] || die "nothing rendered at $manifests"
  # 1. Config, secrets, services, ingress, policies, autoscaling, analysis (not the namespace:
  #    that is bootstrap's).
  $kubectl apply -f "$manifests" --selector 'app.kubernetes.io/component notin (namespace,migration,server)'
  sync_secrets
  # The canary's analysis judges this ALB's own errors: its name goes into the Rollout's steps.
  alb=$(load_balancer "$manifests" "$1/alb-lookup.err") || exit 1
  check_web_acl "$alb" "$(output "$1/cloudformation-outputs.env" WebAclArn)" "$1/waf-lookup.err"
  alb=${alb#*:loadbalancer/}
  echo "analysis: load-balancer $alb"
  sed "s|value: load-balancer-full-name\$|value: $alb|" "$manifests" > "$1/workload.yaml"
  # 2. The schema migration, once per release; a Job's pod template is immutable, so replace it.
  k delete job registro-migrate --ignore-not-found --wait=true
  $kubectl apply -f "$manifests" --selector 'app.kubernetes.io/component=migration'
  outcome=$(wait_job registro-migrate "${MIGRATION_TIMEOUT:-600}")
  if [ "${outcome%% *}" != Complete ]; then
    k logs job/registro-migrate --tail=100 || true
    die "migration $outcome: the release stops here and the running version is untouched"
  fi
  # 3. The workload: Argo Rollouts runs the canary, judged on the traffic it gets.
  start_traffic "$manifests"
  $kubectl apply -f "$1/workload.yaml" --selector 'app.kubernetes.io/component=server'
  wait_rollout
  stop_traffic
}

connect() {
  local outputs_file=$1
  aws eks update-kubeconfig --region "$(output "$outputs_file" AwsRegion)" \
    --name "$(output "$outputs_file" ClusterName)" >/dev/null
}

# The image pushed as TAG, by digest: what runs can never change under the same name.
pinned_image() {
  local outputs_file=$1 tag=$2 repository digest
  [[ $tag =~ ^[0-9a-f]{7,40}$ ]] || die "TAG must be a git commit, got '$tag'"
  repository=$(output "$outputs_file" RepositoryUri)
  digest=$(aws ecr describe-images --region "$(output "$outputs_file" AwsRegion)" \
    --repository-name "${repository#*/}" --image-ids imageTag="$tag" \
    --query 'imageDetails[0].imageDigest' --output text)
  [[ $digest == sha256:* ]] || die "no image $repository:$tag in ECR"
  echo "$repository@$digest"
}

# The image must be what our release workflow signed and attested for this commit: a Sigstore
# signature of the deploy workflow's identity, SLSA provenance and an SBOM
# (deploy/image/verify.py, docs/decisions/image-signing.md), or nothing is rendered or applied.
# SUPPLY_PYTHON: a Python with cryptography (make deploy-k8s passes .venvs/supply's).
verify_image() {
  local env=$1 image=$2 commit=$3
  (cd "$root" && exec "${SUPPLY_PYTHON:-python3}" -m deploy.image.verify "$image" --env "$env" --commit "$commit") \
    || die "refusing to release $image: it is not what our release workflow signed and attested" \
      "for $commit (above: why); nothing was applied"
}

deploy() {
  local env=$1 tag=$2 dir=$work/$1 image
  mkdir -p "$work"
  outputs "$env" > "$work/$env.env"
  image=$(pinned_image "$work/$env.env" "$tag")
  verify_image "$env" "$image" "$tag"
  render "$env" "$image" "$work/$env.env" "$dir"
  connect "$work/$env.env"
  apply "$dir"
}

# The platform's charts, in the order deploy/k8s/platform/charts lists them, each waited for
# (controllers and their CRDs exist before anything that needs them).
install_charts() {
  local values=$1/values release namespace version repository
  while read -r release namespace version repository; do
    $helm upgrade --install "$release" "$release" --repo "$repository" --version "$version" \
      --namespace "$namespace" --values "$values/$release.yaml" \
      --wait --timeout "${HELM_TIMEOUT:-10m}"
  done < <(grep -vE '^\s*(#|$)' "$here/platform/charts")
}

bootstrap() {
  local env=$1 dir=$work/$1-bootstrap
  mkdir -p "$work"
  outputs "$env" > "$work/$env.env"
  # The image does not matter to the namespace; any well-formed digest renders.
  render "$env" "$(output "$work/$env.env" RepositoryUri)@sha256:$(printf '0%.0s' {1..64})" "$work/$env.env" "$dir"
  # The image policies name the GitHub repository whose release workflow signs (not an output).
  ops deploy.k8s.tools.platform_values "$work/$env.env" "$dir/platform" \
    "GitHubRepository=$(ops deploy.aws.stacks value "$env" GitHubRepository)"
  connect "$work/$env.env"
  $kubectl apply -f "$dir/manifests.yaml" --selector 'app.kubernetes.io/component=namespace'
  # Namespaces, the gp3 StorageClass, the Cluster Autoscaler, the deployer's Role.
  $kubectl apply -f "$dir/platform/manifests.yaml"
  install_charts "$dir/platform"
  # The admission policies of registro's images (policy-controller's CRD came with its chart).
  $kubectl apply -f "$dir/platform/policies.yaml"
}

rollback() {
  local env=$1 tag=${2:-} phase running
  mkdir -p "$work"
  outputs "$env" > "$work/$env.env"
  connect "$work/$env.env"
  if [ -n "$tag" ]; then
    running=$(k get rollout "$rollout" -o jsonpath='{.spec.template.spec.containers[0].image}')
    if [ "$running" != "$(pinned_image "$work/$env.env" "$tag")" ]; then
      echo "release $tag never reached the Rollout (it runs $running): nothing to roll back"
      return 0
    fi
  fi
  phase=$(k get rollout "$rollout" -o jsonpath='{.status.phase}')
  if [ "$phase" != Healthy ]; then
    # A canary in progress: all traffic back to the stable pods now, then make the stable
    # revision the desired one again so that the Rollout is Healthy. `abort` lives in the
    # Rollout's status, which the API server only changes through the status subresource.
    k patch rollout "$rollout" --subresource=status --type merge -p '{"status":{"abort":true}}'
  fi
  # The Rollout's own labels and its pods' (so its ReplicaSets') share only the component.
  k get rollout,replicaset -l app.kubernetes.io/component=server -o json \
    | ops deploy.k8s.tools.previous_template > "$work/rollback-patch.json"
  k patch rollout "$rollout" --type merge --patch-file "$work/rollback-patch.json"
  wait_rollout
}

case "${1:-}" in
  deploy) [ $# -eq 3 ] || die "usage: release.sh deploy ENV TAG"; deploy "$2" "$3" ;;
  bootstrap) [ $# -eq 2 ] || die "usage: release.sh bootstrap ENV"; bootstrap "$2" ;;
  rollback) [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: release.sh rollback ENV [TAG]"; rollback "$2" "${3:-}" ;;
  outputs) [ $# -eq 2 ] || die "usage: release.sh outputs ENV"; outputs "$2" ;;
  output) [ $# -eq 3 ] || die "usage: release.sh output ENV KEY"; outputs "$2" | grep -E "^$3=" | cut -d= -f2- ;;
  render) [ $# -eq 5 ] || die "usage: release.sh render ENV IMAGE OUTPUTS DIR"; render "$2" "$3" "$4" "$5" ;;
  apply) [ $# -eq 2 ] || die "usage: release.sh apply DIR"; apply "$2" ;;
  *) die "usage: release.sh deploy|bootstrap|rollback|outputs|output|render|apply ..." ;;
esac
