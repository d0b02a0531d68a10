#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
# Runs as root (CI) or with sudo available. Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# rsync, git, g++ and make: gitlab-ci-local (below), which runs examples/ci/gitlab-ci.yml in the tests
SYSTEM_PACKAGES=(openssh-server openssh-client redis-server postgresql sudo iproute2 procps
                 util-linux curl tar gzip coreutils passwd acl python3 python3-yaml python3-pip
                 python3-venv dpkg-dev rsync git g++ make)
command -v npm >/dev/null || SYSTEM_PACKAGES+=(nodejs npm)  # a Node.js without its own npm
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The real GitLab runner for the CI example's test. Its re2 dependency compiles from source
# where no prebuilt binary can be fetched (many minutes, once per machine).
GITLAB_CI_LOCAL=4.60.0
if [ "$(gitlab-ci-local --version 2>/dev/null)" != "$GITLAB_CI_LOCAL" ]; then
  $SUDO npm install -g --no-fund --no-audit --allow-scripts=re2 "gitlab-ci-local@$GITLAB_CI_LOCAL"
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
exec "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
