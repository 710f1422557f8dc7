#!/bin/sh
# Runtime stage of the image (also run by tests/test_deploy_image.py): a fresh virtual
# environment with exactly the wheels the build stage made, from that directory only (no index).
#   install-wheels.sh WHEEL_DIR VENV [PYTHON]
set -eu
wheel_dir=$1
venv=$2
python=${3:-python}
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --no-index --find-links "$wheel_dir" \
  -r "$wheel_dir/requirements.txt"
# pip is not needed at run time; leaving it out leaves less to patch.
"$venv/bin/python" -m pip uninstall -q -y pip
"$venv/bin/botmox" --version
