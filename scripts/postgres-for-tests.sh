#!/usr/bin/env bash
# A local PostgreSQL server for the multi-machine tests (Debian's package), listening on
# 127.0.0.1 only, with a role and two databases: one for Optuna, one for MLflow. Idempotent.
# Needs root (apt-get, and running the server as the postgres user). Prints the URL to export:
#   export CNNLAB_TEST_POSTGRES=$(bash scripts/postgres-for-tests.sh)
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
  pg_ctlcluster "$version" main start -- -o "-c listen_addresses=127.0.0.1" >&2 || \
    pg_ctlcluster "$version" main start >&2
fi
psql_() { su postgres -c "psql -qAt -v ON_ERROR_STOP=1 $*"; }
for _ in $(seq 30); do psql_ "-c 'select 1'" >/dev/null 2>&1 && break; sleep 1; done
if [ "$(psql_ "-c \"select 1 from pg_roles where rolname = 'cnnlab'\"")" != 1 ]; then
  psql_ "-c \"create role cnnlab login password 'pg-test-secret'\"" >&2
fi
for db in cnnlab_optuna cnnlab_mlflow; do
  if [ "$(psql_ "-c \"select 1 from pg_database where datname = '$db'\"")" != 1 ]; then
    psql_ "-c 'create database $db owner cnnlab'" >&2
  fi
done
echo "postgresql://cnnlab:pg-test-secret@127.0.0.1:5432"
