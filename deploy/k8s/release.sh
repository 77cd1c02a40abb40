#!/usr/bin/env bash
# A release of registro to one environment, in the order that keeps it safe:
#   outputs ENV            print the overlay's CloudFormation outputs as KEY=VALUE, read from the
#                          stacks' exports named registro-ENV-<Key> (AwsRegion: the CLI's region)
#   render ENV IMAGE OUTPUTS DIR
#                          build the overlay with those outputs and the image pinned by digest
#                          (IMAGE = repository@sha256:...) into DIR/manifests.yaml, touching
#                          nothing in deploy/k8s
#   apply DIR              apply DIR/manifests.yaml: everything but the workload, then the
#                          migration Job (waited for), then the Rollout (waited for)
# make deploy-k8s runs the three; make verify-k8s runs `render` with the committed placeholders.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
namespace=registro
kubectl=${KUBECTL:-kubectl}

die() { echo "release.sh: $*" >&2; exit 1; }

outputs() {
  local env=$1 key value region
  region=${AWS_REGION:-$(aws configure get region)}
  [ -n "$region" ] || die "no AWS region (set AWS_REGION)"
  # The keys are the ones the overlay's committed cloudformation-outputs.env names: one list.
  for key in $(grep -oE '^[A-Za-z0-9]+=' "$here/overlays/$env/cloudformation-outputs.env" | tr -d '='); do
    if [ "$key" = AwsRegion ]; then
      value=$region
    else
      value=$(aws cloudformation list-exports --region "$region" --output text \
        --query "Exports[?Name=='registro-$env-$key'].Value | [0]")
    fi
    [ -n "$value" ] && [ "$value" != None ] || die "export registro-$env-$key not found"
    echo "$key=$value"
  done
}

render() {
  local env=$1 image=$2 outputs_file=$3 dir=$4
  [ -d "$here/overlays/$env" ] || die "no overlay '$env'"
  [[ $image =~ ^[a-z0-9./_-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$ ]] \
    || die "image must be repository@sha256:<digest>, got '$image'"
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r "$here" "$dir/k8s"
  cp "$outputs_file" "$dir/k8s/overlays/$env/cloudformation-outputs.env"
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

apply() {
  local manifests=$1/manifests.yaml
  [ -f "$manifests" ] || die "nothing rendered at $manifests"
  # 1. Namespace, config, secrets, services, ingress, policies, autoscaling, analysis.
  $kubectl apply -f "$manifests" --selector 'app.kubernetes.io/component notin (migration,server)'
  $kubectl -n "$namespace" wait externalsecret/registro-database --for=condition=Ready --timeout=120s
  # 2. The schema migration, once per release; a Job's pod template is immutable, so replace it.
  $kubectl -n "$namespace" delete job registro-migrate --ignore-not-found --wait=true
  $kubectl apply -f "$manifests" --selector 'app.kubernetes.io/component=migration'
  if ! $kubectl -n "$namespace" wait job/registro-migrate --for=condition=Complete --timeout=600s; then
    $kubectl -n "$namespace" logs job/registro-migrate --tail=100 || true
    die "migration failed: the release stops here, the running version is untouched"
  fi
  # 3. The workload: Argo Rollouts runs the canary; `status` returns when it is Healthy and fails
  #    when the rollout is aborted or degraded.
  $kubectl apply -f "$manifests" --selector 'app.kubernetes.io/component=server'
  $kubectl argo rollouts status registro -n "$namespace" --timeout 30m
}

case "${1:-}" in
  outputs) [ $# -eq 2 ] || die "usage: release.sh outputs ENV"; outputs "$2" ;;
  render) [ $# -eq 5 ] || die "usage: release.sh render ENV IMAGE OUTPUTS DIR"; render "$2" "$3" "$4" "$5" ;;
  apply) [ $# -eq 2 ] || die "usage: release.sh apply DIR"; apply "$2" ;;
  *) die "usage: release.sh outputs|render|apply ..." ;;
esac
