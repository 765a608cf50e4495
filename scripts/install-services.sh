#!/usr/bin/env bash
# Install the machine services that convoy-stream's integration tests and `make run` use and
# that no language registry ships: today only RabbitMQ (Debian's `rabbitmq-server`).
#
# Idempotent: exits 0 at once when everything is already installed, and runs `apt-get update`
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

if have_rabbitmq; then
    echo "rabbitmq-server already installed"
    exit 0
fi

if ! apt_knows rabbitmq-server; then
    $SUDO apt-get update -q
fi
# The package's maintainer script tries to start the service; on machines without an init
# system that may fail harmlessly, the tests start it themselves with `rabbitmq-server -detached`.
$SUDO apt-get install -y -q --no-install-recommends rabbitmq-server

if ! have_rabbitmq; then
    echo "install-services.sh: rabbitmq-server still missing after apt-get install" >&2
    exit 1
fi
echo "rabbitmq-server installed"
