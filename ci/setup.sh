#!/usr/bin/env bash
# Set up everything mta needs on a Debian machine with Python 3.11: Debian packages (when
# root), a virtualenv in .venv, and an editable install that compiles the Cython hotpath.
# `--tests` also installs what the test suite needs (ci/apt-test-packages.txt: Postfix's
# tools, swaks, pflogsumm, the servers the table tests start). Idempotent; safe to run again.
# Used by both README commands.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${MTA_VENV:-.venv}
package_lists=(ci/apt-packages.txt)
[ "${1:-}" != "--tests" ] || package_lists+=(ci/apt-test-packages.txt)

# Debian packages, one per line in the lists.
missing=()
while read -r package; do
    [ -z "$package" ] || [ "${package#\#}" != "$package" ] && continue
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done < <(cat "${package_lists[@]}")
if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if ! "$PYTHON" -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null; then
    missing+=(python3-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "ci/setup.sh: missing Debian packages (install them as root): ${missing[*]}" >&2
        exit 1
    fi
    # Postfix only for its tools (smtp-source, smtp-sink) and the comparison: "No
    # configuration" writes no main.cf, so no system Postfix starts.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # The servers the tests need (PostgreSQL, Redis, memcached) are started by the tests
    # themselves on loopback ports; keep the packages from starting system-wide daemons.
    temporary_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        temporary_policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$temporary_policy"
        chmod +x "$temporary_policy"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ -z "$temporary_policy" ] || rm -f "$temporary_policy"
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77" >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test]"
"$VENV/bin/mta" --version
