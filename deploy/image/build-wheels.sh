#!/bin/sh
# Build stage of the image (also run by tests/test_deploy_image.py): wheels of botmox[server]
# and the chosen plugins, with every dependency, into one directory, plus the requirements
# file that installs exactly them.
#   build-wheels.sh WHEEL_DIR [PLUGIN ...]      PLUGIN = a folder name under plugins/ without
#                                               "botmox-" (supabase, s3, minio, rtdb)
# Run from the repository root.
set -eu
set -f  # the lists below are split on spaces, never globbed ("botmox[server]")
wheel_dir=$1
shift
requirements="botmox[server]"
sources=""
for plugin in "$@"; do
  case $plugin in
    *[!a-z0-9-]* | "") echo "build-wheels: bad plugin name '$plugin'" >&2; exit 2 ;;
  esac
  if [ ! -f "plugins/botmox-$plugin/pyproject.toml" ]; then
    echo "build-wheels: no plugin 'plugins/botmox-$plugin' in this checkout" >&2
    exit 2
  fi
  requirements="$requirements botmox-$plugin"
  sources="$sources ./plugins/botmox-$plugin"
done
mkdir -p "$wheel_dir"
# The local projects first, then their dependencies from the index, all as wheels.
# shellcheck disable=SC2086  # word splitting of the lists is wanted
python -m pip wheel --wheel-dir "$wheel_dir" ".[server]" $sources
# shellcheck disable=SC2086
printf '%s\n' $requirements >"$wheel_dir/requirements.txt"
echo "build-wheels: wheels in $wheel_dir for: $requirements"
