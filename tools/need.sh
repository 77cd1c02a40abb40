#!/usr/bin/env bash
# The tools the verbs need, read from tools/tools.txt (the one list):
#
#   need.sh --goals TARGET...   for the make targets about to run: print one line naming the
#                               required tools that are missing and how to install them (nothing
#                               when all are there); warn on stderr about missing optional ones.
#                               The Makefile stops on that line before any recipe runs.
#   need.sh --doctor            per group: each tool, present with its version, or missing
#   need.sh --apt GROUP...      the apt packages of the groups' tools that are missing (.ci/run)
#
# Plain bash and awk: it has to work on a machine that has nothing else yet.
set -uo pipefail
set -f  # no globbing: "test?" in a group list is a name, not a pattern
# macOS's own /bin/bash is 3.2, without associative arrays; Homebrew's is current.
if [ "${BASH_VERSINFO[0]}" -lt 4 ]; then
  echo "tools/need.sh needs bash 4 or newer first on PATH, found $BASH_VERSION (macOS: brew install bash)"
  exit 0
fi
LIST=${TOOLS_LIST:-$(dirname "$0")/tools.txt}

# The clusters' Kubernetes minor: the Makefile's one definition.
K8S_VERSION=${K8S_VERSION:-$(sed -nE 's/^K8S_VERSION := ([0-9.]+)$/\1/p' "$(dirname "$0")/../Makefile")}

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

# "group | targets" lines and tool lines, as tab-separated records.
groups_table() { grep -E '^@' "$LIST" | sed -E 's/^@[[:space:]]*//'; }
tools_table() { grep -vE '^[[:space:]]*(#|@|$)' "$LIST"; }

# The version a probe reports ("-" if none), or nothing at all when the tool is absent.
# Each probe runs once per call, however many groups name its tool.
declare -A PROBED=()
probe() {
  local out
  if [ -z "${PROBED[$1]+set}" ]; then
    if out=$(bash -c "$1" 2>&1); then
      PROBED[$1]=$(grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' <<<"$out" | head -n 1 | grep . || echo -)
    else
      PROBED[$1]=
    fi
  fi
  [ -n "${PROBED[$1]}" ] && echo "${PROBED[$1]}"
}

# "kubernetes±1" as the range it stands for: MIN MAX (minor versions).
skew_range() {
  local major=${K8S_VERSION%%.*} minor=${K8S_VERSION#*.}
  echo "$major.$((minor - 1)) $major.$((minor + 1))"
}

# Is version A older than version B (x.y[.z])?
older() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]; }

# 0 present, 1 absent, 2 older than the minimum, 3 newer than the range allows; the version found
# is left in $version, and what is required in $required.
state() {
  local probe_cmd=$1 minimum=$2 maximum=
  probe "$probe_cmd" >/dev/null || return 1
  version=${PROBED[$probe_cmd]}
  required=">= $minimum"
  if [ "$minimum" = "kubernetes±1" ]; then
    read -r minimum maximum < <(skew_range)
    required="$minimum to $maximum (Kubernetes $K8S_VERSION ± 1 minor)"
  fi
  [ "$minimum" = - ] || [ "$version" = - ] && return 0
  older "$version" "$minimum" && return 2
  [ -n "$maximum" ] && older "$maximum" "${version%.*}" && return 3
  return 0
}

how() {
  local apt=$1 otherwise=$2
  if [ "$apt" != - ]; then
    printf 'apt-get install %s' "$apt"
    [ "$otherwise" != - ] && printf ' (%s)' "$otherwise"
  else
    printf '%s' "$otherwise"
  fi
}

# Each tool line of GROUP as: name probe minimum apt otherwise optional(0|1), tab-separated.
tools_of() {
  local group=$1 name groups probe_cmd minimum apt otherwise g
  while IFS='|' read -r name groups minimum apt otherwise probe_cmd; do
    for g in ${groups//,/ }; do
      if [ "$g" = "$group" ] || [ "$g" = "$group?" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(trim "$name")" "$(trim "$probe_cmd")" \
          "$(trim "$minimum")" "$(trim "$apt")" "$(trim "$otherwise")" "$([ "$g" = "$group?" ] && echo 1 || echo 0)"
      fi
    done
  done < <(tools_table)
}

group_of_target() {
  local target=$1 group targets t
  while IFS='|' read -r group targets; do
    for t in $targets; do
      [ "$t" = "$target" ] && { trim "$group"; return 0; }
    done
  done < <(groups_table)
  return 1
}

goals() {
  local target group name probe_cmd minimum apt otherwise optional version required rc
  local -a missing=() seen=()
  for target in "$@"; do
    group=$(group_of_target "$target") || continue
    while IFS=$'\t' read -r name probe_cmd minimum apt otherwise optional; do
      [[ " ${seen[*]} " == *" $name "* ]] && continue
      seen+=("$name")
      state "$probe_cmd" "$minimum"
      rc=$?
      [ $rc = 0 ] && continue
      local what=$name
      [ $rc -ge 2 ] && what="$name $required (found $version)"
      if [ "$optional" = 1 ]; then
        echo "make $target: $what is missing; the checks that need it will skip. Install: $(how "$apt" "$otherwise")" >&2
      else
        missing+=("$what: $(how "$apt" "$otherwise")")
      fi
    done < <(tools_of "$group")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local needs
    needs=$(printf '%s; ' "${missing[@]}")
    # shellcheck disable=SC2016 # the backquotes are for the reader
    printf 'make %s needs %s (install as root, or with sudo; `make doctor` lists every group)\n' \
      "$*" "${needs%; }"
  fi
}

doctor() {
  local group targets name probe_cmd minimum apt otherwise optional version required rc absent=0
  while IFS='|' read -r group targets; do
    group=$(trim "$group")
    printf '%s (make %s)\n' "$group" "$(trim "$targets" | sed 's/  */, /g')"
    while IFS=$'\t' read -r name probe_cmd minimum apt otherwise optional; do
      state "$probe_cmd" "$minimum"
      rc=$?
      case $rc in
        0) printf '  ok       %-16s %s\n' "$name" "$version" ;;
        2|3) printf '  %-8s %-16s %s, needs %s: %s\n' "$([ $rc = 2 ] && echo 'TOO OLD' || echo 'TOO NEW')" "$name" "$version" "$required" "$(how "$apt" "$otherwise")"; absent=1 ;;
        *) printf '  %-8s %-16s %s\n' "$([ "$optional" = 1 ] && echo optional || echo MISSING)" "$name" "$(how "$apt" "$otherwise")"
           [ "$optional" = 1 ] || absent=1 ;;
      esac
    done < <(tools_of "$group")
  done < <(groups_table)
  if [ $absent = 1 ]; then
    echo "Install as root, or with sudo. The verbs of a group with a missing tool stop at once, naming it."
  fi
  return 0
}

apt_packages() {
  local group name probe_cmd minimum apt otherwise optional version required
  for group in "$@"; do
    while IFS=$'\t' read -r name probe_cmd minimum apt otherwise optional; do
      [ "$apt" = - ] && continue
      state "$probe_cmd" "$minimum" || echo "$apt"
    done < <(tools_of "$group")
  done | sort -u | tr '\n' ' '
  echo
}

case ${1:-} in
  --goals) shift; goals "$@" ;;
  --doctor) doctor ;;
  --apt) shift; apt_packages "$@" ;;
  *) echo "usage: $0 --goals TARGET... | --doctor | --apt GROUP..." >&2; exit 2 ;;
esac
