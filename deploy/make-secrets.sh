#!/bin/sh
# Makes the deployment's secrets once: random passwords in ./secrets (kept out of git).
# The directory is private to you (0700); the files inside are 0644 because Docker Compose mounts them into the
# containers as they are, where the database and the gateway run as users of their own.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
for name in postgres_password shop_password; do
  if [ ! -s "secrets/$name" ]; then
    head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "secrets/$name"
    chmod 644 "secrets/$name"
    echo "made secrets/$name"
  fi
done
