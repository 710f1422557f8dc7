#!/usr/bin/env bash
# Health-gated deploy and rollback of the botmox stack on this host (called by the deploy and
# rollback workflows over SSH; usable by hand).
#
#   ./deploy.sh deploy TAG       pull and start image TAG; on failed health, go back by itself
#   ./deploy.sh rollback [TAG]   go back to the recorded previous tag (or TAG), health-gated
#   ./deploy.sh status           the recorded tags and the last deploys
#
# The image repository is BOTMOX_IMAGE (environment, else .env); the tag is never guessed.
# State lives in $BOTMOX_DEPLOY_STATE (default .deploy/ beside this script): current-tag,
# previous-tag (the tag the last deploy replaced) and history.log (one line per attempt).
#
# Environment (each also read from .env, the environment wins):
#   BOTMOX_IMAGE            image repository, e.g. ghcr.io/acme/botmox (required)
#   BOTMOX_HEALTH_URL       readiness URL through Caddy [https://$BOTMOX_DOMAIN/api/v1/health/ready]
#   BOTMOX_HEALTH_TIMEOUT   seconds to wait for health [180]
#   BOTMOX_REPLICAS         botmox containers that must be healthy [2]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
deploy_dir=${BOTMOX_DEPLOY_DIR:-$here}
state_dir=${BOTMOX_DEPLOY_STATE:-$deploy_dir/.deploy}
env_file=$deploy_dir/.env

die() { echo "deploy: $*" >&2; exit 1; }
say() { echo "deploy: $*"; }

# KEY's value: the environment, else the last KEY=... line of .env (read, never sourced).
setting() {
  local key=$1 value
  value=${!key:-}
  if [ -z "$value" ] && [ -f "$env_file" ]; then
    value=$(sed -n "s/^${key}=//p" "$env_file" | tail -n 1)
    value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  fi
  printf '%s' "$value"
}

valid_tag() { [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; }

compose() { docker compose --project-directory "$deploy_dir" -f "$deploy_dir/compose.yml" "$@"; }

record() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$state_dir/history.log"; }

read_state() { cat "$state_dir/$1" 2>/dev/null || true; }

write_state() { printf '%s\n' "$2" >"$state_dir/$1.tmp" && mv "$state_dir/$1.tmp" "$state_dir/$1"; }

# 0 when every botmox container runs image:TAG and is healthy, and the health URL answers.
healthy() {
  local tag=$1 ids id status count=0
  ids=$(compose ps -q botmox) || return 1
  for id in $ids; do
    status=$(docker inspect --format '{{.State.Health.Status}} {{.Config.Image}}' "$id") || return 1
    [ "$status" = "healthy $image:$tag" ] || return 1
    count=$((count + 1))
  done
  [ "$count" -ge "$replicas" ] || return 1
  curl --silent --show-error --fail --max-time 5 --output /dev/null "$health_url" 2>/dev/null
}

wait_healthy() {
  local tag=$1 deadline=$((SECONDS + timeout))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if healthy "$tag"; then return 0; fi
    sleep 2
  done
  return 1
}

# Start TAG and wait for health. 0 healthy; 1 not.
start() {
  local tag=$1
  export BOTMOX_IMAGE=$image BOTMOX_TAG=$tag
  say "pulling $image:$tag"
  compose pull --quiet botmox migrate || return 1
  say "starting $image:$tag (migrations run first)"
  compose up -d --remove-orphans || return 1
  say "waiting up to ${timeout}s for $replicas healthy replicas and $health_url"
  wait_healthy "$tag"
}

# Move from the current tag to TAG; on failure, back to the current tag by itself.
release() {
  local action=$1 tag=$2 current
  current=$(read_state current-tag)
  if start "$tag"; then
    if [ -n "$current" ] && [ "$current" != "$tag" ]; then write_state previous-tag "$current"; fi
    write_state current-tag "$tag"
    record "$action ${current:-none} -> $tag ok"
    say "$tag is live (replaced ${current:-nothing})"
    return 0
  fi
  record "$action ${current:-none} -> $tag failed health"
  echo "deploy: $tag did not become healthy; last botmox logs:" >&2
  compose logs --tail 50 botmox migrate >&2 || true
  if [ -z "$current" ] || [ "$current" = "$tag" ]; then
    die "no other tag recorded to go back to; the stack is on $tag and unhealthy"
  fi
  say "rolling back to $current"
  if start "$current"; then
    record "auto-rollback $tag -> $current ok"
    die "$tag failed health; rolled back to $current, which is healthy"
  fi
  record "auto-rollback $tag -> $current failed health"
  echo "deploy: $tag failed health and so did $current: the stack is DOWN, act now" >&2
  exit 2
}

main() {
  local command=${1:-}
  [ $# -gt 0 ] && shift
  case $command in
    deploy | rollback | status) ;;
    *) die "usage: deploy.sh deploy TAG | rollback [TAG] | status" ;;
  esac
  mkdir -p "$state_dir"
  if [ "$command" = status ]; then
    echo "current:  $(read_state current-tag)"
    echo "previous: $(read_state previous-tag)"
    tail -n 10 "$state_dir/history.log" 2>/dev/null || true
    return 0
  fi
  local tag=${1:-}
  if [ "$command" = rollback ] && [ -z "$tag" ]; then
    tag=$(read_state previous-tag)
    [ -n "$tag" ] || die "no previous tag recorded in $state_dir/previous-tag; pass one: deploy.sh rollback TAG"
  fi
  [ -n "$tag" ] || die "usage: deploy.sh deploy TAG"
  valid_tag "$tag" || die "'$tag' is not an image tag"
  image=$(setting BOTMOX_IMAGE)
  [ -n "$image" ] || die "BOTMOX_IMAGE is not set (environment or $env_file)"
  replicas=$(setting BOTMOX_REPLICAS); replicas=${replicas:-2}
  timeout=$(setting BOTMOX_HEALTH_TIMEOUT); timeout=${timeout:-180}
  health_url=$(setting BOTMOX_HEALTH_URL)
  if [ -z "$health_url" ]; then
    local domain
    domain=$(setting BOTMOX_DOMAIN)
    [ -n "$domain" ] || die "set BOTMOX_HEALTH_URL or BOTMOX_DOMAIN (environment or $env_file)"
    health_url="https://$domain/api/v1/health/ready"
  fi
  exec 9>"$state_dir/lock"
  flock --nonblock 9 || die "another deploy or rollback is running on this host"
  release "$command" "$tag"
}

main "$@"
