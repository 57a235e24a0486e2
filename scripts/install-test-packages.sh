#!/usr/bin/env bash
# Install the Debian packages that real-server tests use, when they are missing:
#   postgresql-15 (with contrib: xml2, dblink, pageinspect, pg_stat_statements, ...)
#   pgbouncer (tests/pgbouncer.py runs a private one, in transaction mode, left at its defaults)
# No cluster or PgBouncer is started: the tests start private ones themselves (the package's own
# pgbouncer service is left disabled and stopped).
# Idempotent: with everything installed it exits at once, without touching apt.
# Needs root and apt-get; exits non-zero (and changes nothing) otherwise.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
[ ${#need[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "not root: cannot install ${need[*]}"; exit 1; }
mkdir -p /etc/postgresql-common
grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
  || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# the Debian package enables a system-wide pgbouncer on port 6432: the tests need none
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi
