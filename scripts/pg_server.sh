#!/usr/bin/env bash
# `make server`: a shared MLflow tracking server for a research group.
#
# Backend store: a PostgreSQL cluster of its own under $STATE/postgres (Debian's `postgresql` package),
# listening on 127.0.0.1 only, password auth (the password lives in $STATE/pgpass, mode 0600).
# Artifacts: $STATE/mlartifacts, served by the tracking server itself (--serve-artifacts), so runners on
# other machines upload and download them over http and need no shared disk.
# Logins: MLflow's basic-auth app (--app-name basic-auth). At the first start an admin password is drawn
# at random into $STATE/mlflow-admin-password (mode 0600; there is no default password); the users and
# their permissions live in the database mlflow_auth of the same cluster. A logged-in user may read and log
# to every experiment (DEFAULT_PERMISSION=EDIT) but deletes only in what they created; a request without a
# valid login gets 401. Runners log in with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
# The server runs in the foreground; Ctrl-C (or SIGTERM) stops it and the database.
#
#   STATE=.state HOST=127.0.0.1 PORT=5000 PGPORT=5433 WORKERS=2 ALLOWED_HOSTS= scripts/pg_server.sh
set -euo pipefail

STATE=${STATE:-.state}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
PGPORT=${PGPORT:-5433}
WORKERS=${WORKERS:-2}
MLFLOW=${MLFLOW:-.venv/bin/mlflow}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL is not installed: apt-get install postgresql (or set PGBIN)" >&2
  exit 2
fi
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PGDATA="$STATE/postgres"

# initdb and postgres refuse to run as root: as root, the cluster belongs to the package's `postgres` user.
as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ ! -f "$PGDATA/PG_VERSION" ]; then
  saved_umask=$(umask)
  umask 077
  head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/pgpassword"
  mkdir -p "$PGDATA"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PGDATA" "$STATE/pgpassword"; fi
  as_db_user "$PGBIN/initdb" -D "$PGDATA" -U mlflow --pwfile="$STATE/pgpassword" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 >"$STATE/initdb.log"
  # libpq's password file: host:port:database:user:password (read by psql and by psycopg2 in mlflow)
  echo "127.0.0.1:*:*:mlflow:$(cat "$STATE/pgpassword")" > "$STATE/pgpass"
  rm -f "$STATE/pgpassword"
  umask "$saved_umask"
fi
export PGPASSFILE="$STATE/pgpass"

if ! as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  # loopback only; the unix socket lives in the cluster dir, not in /run/postgresql
  as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -s \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA" start
fi
stop_db() { as_db_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -s stop || true; }
trap stop_db EXIT
trap 'exit 143' TERM INT

for db in mlflow mlflow_auth; do # the runs; the logins and their permissions
  if ! "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U mlflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U mlflow "$db"
  fi
done

# The admin's password, drawn once at the first start: MLflow creates the admin with it then and ignores it
# once the admin exists (change it with the update-password API, README).
if [ ! -f "$STATE/mlflow-admin-password" ]; then
  (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/mlflow-admin-password")
fi
(umask 077 && head -c 24 /dev/urandom | base64 >"$STATE/flask-secret")
(umask 077 && cat >"$STATE/basic_auth.ini" <<EOF
[mlflow]
default_permission = ${DEFAULT_PERMISSION:-EDIT}
database_uri = postgresql+psycopg2://mlflow@127.0.0.1:$PGPORT/mlflow_auth
admin_username = admin
admin_password = $(cat "$STATE/mlflow-admin-password")
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
)
export MLFLOW_AUTH_CONFIG_PATH="$STATE/basic_auth.ini"
MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$STATE/flask-secret")
export MLFLOW_FLASK_SERVER_SECRET_KEY

mkdir -p "$STATE/mlartifacts"
shown=$HOST
if [ "$HOST" = 0.0.0.0 ]; then shown=$(hostname -f 2>/dev/null || hostname); fi
echo "MLflow tracking server: http://$shown:$PORT  (store: postgresql on 127.0.0.1:$PGPORT, artifacts: $STATE/mlartifacts)"
echo "Point runners at it:    runner tracking.uri=http://$shown:$PORT"
echo "Logins: the admin's password is in $STATE/mlflow-admin-password; runners set MLFLOW_TRACKING_USERNAME/PASSWORD"

# MLflow 3 also starts GenAI job runners (huey consumers, several processes): nothing here uses them.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
extra=()
if [ -n "${ALLOWED_HOSTS:-}" ]; then extra+=(--allowed-hosts "$ALLOWED_HOSTS"); fi
# Not exec: the EXIT trap must stop the database when the server stops.
"$MLFLOW" server \
  --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$PGPORT/mlflow" \
  --serve-artifacts --artifacts-destination "$STATE/mlartifacts" \
  --app-name basic-auth --host "$HOST" --port "$PORT" --workers "$WORKERS" "${extra[@]}"
