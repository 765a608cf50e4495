#!/usr/bin/env bash
# Install the machine services that convoy-stream's integration tests and `make run` use and
# that no language registry ships: RabbitMQ (Debian's `rabbitmq-server`) and Chromium (`chromium`,
# for the dashboard's browser tests; Playwright's own browser download is not used).
#
# Idempotent: does nothing for what is already installed, and runs `apt-get update`
# only when the package lists do not know the package yet (a fresh machine).
# Kafka (embedded, jars from Maven Central), the SQS server (moto, a Python dependency) and the
# Pub/Sub emulator (preinstalled with the Google Cloud SDK) are not installed here.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-services.sh: must run as root (or with sudo available)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
PATH="$PATH:/usr/sbin:/sbin"

have_rabbitmq() {
    command -v rabbitmq-server >/dev/null 2>&1 && command -v rabbitmqctl >/dev/null 2>&1
}

apt_knows() {
    # A package is installable when apt-cache shows a real candidate version for it.
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

# ensure <package> <command>...: installs the Debian package unless every command exists.
ensure() {
    local package="$1"; shift
    local missing=0 cmd
    for cmd in "$@"; do command -v "$cmd" >/dev/null 2>&1 || missing=1; done
    if [ "$missing" -eq 0 ]; then
        echo "$package already installed"
        return 0
    fi
    if ! apt_knows "$package"; then
        $SUDO apt-get update -q
    fi
    # Another apt run on the machine holds the lock for a while: wait for it rather than fail.
    $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "$package"
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || { echo "install-services.sh: $cmd still missing after apt-get install $package" >&2; exit 1; }
    done
    echo "$package installed"
}

# RabbitMQ: the package's maintainer script tries to start the service; on machines without an
# init system that may fail harmlessly, the tests start it themselves with `rabbitmq-server -detached`.
ensure rabbitmq-server rabbitmq-server rabbitmqctl
# Chromium: the dashboard's browser tests drive it through Playwright (tests/browser).
ensure chromium chromium
