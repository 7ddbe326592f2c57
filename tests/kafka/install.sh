#!/usr/bin/env bash
# Installs the Kafka clients the end-to-end tests drive (`make tools` runs it): a venv at
# .venv with tests/kafka/requirements.txt (confluent-kafka, kafka-python), and kcat from
# Debian's packages: `apt-get install` as root, otherwise unpacked into .tools/ with a
# wrapper at .tools/bin/kcat. kafkajs comes with `npm ci` (package.json). Idempotent: each
# step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

requirements=tests/kafka/requirements.txt
if [ ! -x .venv/bin/python ] || [ "$requirements" -nt .venv/installed ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian splits venv (ensurepip) out of python3.
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y -q python3-venv || { apt-get update -q && apt-get install -y -q python3-venv; }
            python3 -m venv .venv
        else
            echo "python3 -m venv failed: install python3-venv (Debian) and run make tools again" >&2
            exit 1
        fi
    fi
    .venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
    touch .venv/installed
fi

if ! command -v kcat >/dev/null && [ ! -x .tools/bin/kcat ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q kcat || { apt-get update -q && apt-get install -y -q kcat; }
    else
        # No root: the package and the libraries it needs that are not already here.
        mkdir -p .tools/debs .tools/root .tools/bin
        (cd .tools/debs && apt-get download kcat librdkafka1 libyajl2)
        for deb in .tools/debs/*.deb; do dpkg-deb -x "$deb" .tools/root; done
        cat > .tools/bin/kcat <<EOF
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$root/.tools/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$root/.tools/root/usr/bin/kcat" "\$@"
EOF
        chmod +x .tools/bin/kcat
    fi
fi
