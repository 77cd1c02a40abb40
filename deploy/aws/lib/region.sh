# shellcheck shell=bash
# Sourced by deploy.sh and teardown.sh, after their die(): the region first, since without one
# every AWS call fails, each in its own words. awscli v1 reads AWS_DEFAULT_REGION, other SDKs and
# release.sh AWS_REGION: both are exported. (preflight.py and restore.py: preflight.NO_REGION.)
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}
[ -n "$region" ] || die "no AWS region: set AWS_REGION (e.g. AWS_REGION=eu-west-1) or run 'aws configure'"
export AWS_REGION=$region AWS_DEFAULT_REGION=$region
