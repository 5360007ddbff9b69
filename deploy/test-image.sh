#!/usr/bin/env bash
# Builds deploy/Containerfile and runs every process of the image against a real PostgreSQL.
#
#   apt-get install -y podman runc mmdebstrap postgresql chromium   # once, as root
#   make install && deploy/test-image.sh                           # from the repository
#
# What it checks, each from the image, with host networking:
#   - a process without DATABASE_URL exits 2 with one line (MONITOR_EMBEDDED=off in the image);
#   - `migrate` applies the migrations, and a second run of the same container changes nothing;
#   - the dashboard (login on, read-only role) answers its health check and Chromium renders
#     the Overview after logging in;
#   - the receiver records a signed delivery (a checkout event for an unknown session, which
#     is recorded failed), `watch` sends the alert that failure raises to a local HTTP sink,
#     `schedule` runs a job (health-snapshot, every minute);
#   - each container's HEALTHCHECK passes, and a stop signal ends each process cleanly (exit 0,
#     or 143 when it re-raised SIGTERM after shutting down, as uvicorn does) within 10 s.
#
# The base image is Debian bookworm made from Debian's packages (mmdebstrap, then `podman
# import`): no registry is needed. PostgreSQL is Debian's own server (the postgresql
# package), started by this script on a loopback port in its work folder and stopped at the
# end. Podman here runs rootful with the vfs storage driver and runc (crun refuses hybrid
# cgroups, hence `default_ulimits = []` too); every container copies the whole image, so a
# run from nothing takes about 10.5 minutes on two cores (README, "Running in production").
#
# Settings (environment): WORK (default /var/tmp/webhook-monitor-image-test; the base image
# and the podman storage stay there between runs), PG_PORT (55432), SKIP_BUILD=1 runs the
# image built by the run before, KEEP=1 keeps the containers and the database for a look.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/webhook-monitor-image-test}
PG_PORT=${PG_PORT:-55432}
DASHBOARD_PORT=18501
RECEIVER_PORT=18000
BASE=localhost/webhook-monitor-base:bookworm
IMAGE=localhost/webhook-monitor:test
PY="$REPO/.venv/bin/python"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PASSWORD=image-test-password
SECRET=whsec_image_test_secret
DB_URL="postgresql://monitor:monitor-secret@127.0.0.1:$PG_PORT/monitor"
DASHBOARD_DB_URL="postgresql://webhook_monitor_dashboard:dashboard-secret@127.0.0.1:$PG_PORT/monitor"
START=$(date +%s)

say() { printf '[%4ds] %s\n' $(( $(date +%s) - START )) "$*"; }
fail() { say "FAIL: $*"; exit 1; }

mkdir -p "$WORK"
cat > "$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
podman() { command podman --storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run" --runtime runc "$@"; }
NAMES=(wm-nodb wm-migrate wm-dashboard wm-receiver wm-watch wm-schedule)
remove_containers() {  # also those a stopped run left half-created (in the storage only)
    local name
    for name in "${NAMES[@]}"; do
        podman rm -f -t 0 "$name" >/dev/null 2>&1 || podman rm --storage "$name" >/dev/null 2>&1 || true
    done
}

cleanup() {
    [ "${KEEP:-0}" = 1 ] && return
    remove_containers
    [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null || true
    [ -f "$WORK/pg/data/postmaster.pid" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null || true
}
trap cleanup EXIT

# --- the base image and the build ---------------------------------------------------------
if ! podman image exists "$BASE"; then
    say "base image: mmdebstrap bookworm"
    mmdebstrap --quiet --variant=apt --mode=root --format=tar bookworm "$WORK/base.tar"
    podman import --quiet --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$BASE" >/dev/null
    rm -f "$WORK/base.tar"
fi
# pip in the build trusts the host's CA bundle (a TLS-intercepting proxy on the way to PyPI).
CA_ARGS=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && \
    CA_ARGS=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt)
if [ "${SKIP_BUILD:-0}" = 1 ] && podman image exists "$IMAGE"; then
    say "using the image built before (SKIP_BUILD=1)"
else
    say "building $IMAGE"
    podman build --quiet --format docker --layers=false --network host --build-arg BASE="$BASE" "${CA_ARGS[@]}" \
        -f "$REPO/deploy/Containerfile" -t "$IMAGE" "$REPO" >/dev/null
fi
remove_containers
say "built: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# --- PostgreSQL: Debian's server on a loopback port ------------------------------------------
# The data folder, its log and socket in $WORK/pg, owned by Debian's postgres user.
rm -rf "$WORK/pg" && mkdir -p "$WORK/pg/data" && chown -R postgres "$WORK/pg"
echo monitor-secret > "$WORK/pg/password" && chown postgres "$WORK/pg/password"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U monitor --pwfile="$WORK/pg/password" \
    --auth=scram-sha-256 >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK/pg" start >/dev/null
PGPASSWORD=monitor-secret psql -q -h 127.0.0.1 -p "$PG_PORT" -U monitor -d postgres -c "CREATE DATABASE monitor"
sql() { psql -qtAX "$DB_URL" -c "$1"; }
say "PostgreSQL on 127.0.0.1:$PG_PORT"

run_env=(--network host -e DATABASE_URL="$DB_URL" --read-only --tmpfs /tmp --cap-drop ALL
         --security-opt no-new-privileges)

# --- no DATABASE_URL: exit 2, one line ------------------------------------------------------
podman run --name wm-nodb --network host "$IMAGE" status >/dev/null 2>&1 || true
code=$(podman inspect --format '{{.State.ExitCode}}' wm-nodb)
out=$(podman logs wm-nodb 2>&1)
[ "$code" = 2 ] || fail "without DATABASE_URL: exit $code, not 2 ($out)"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ "$out" == *"DATABASE_URL is not set"* ]] \
    || fail "without DATABASE_URL, not one line naming it: $out"
say "ok: without DATABASE_URL: exit 2, '$out'"
podman rm wm-nodb >/dev/null

# --- migrate, twice ---------------------------------------------------------------------------
podman create --name wm-migrate "${run_env[@]}" "$IMAGE" migrate >/dev/null
first=$(podman start --attach wm-migrate 2>&1)
[[ "$first" == *"applied"* ]] || fail "migrate: $first"
second=$(podman start --attach wm-migrate 2>&1)
[[ "$second" == *"nothing to do"* ]] || fail "second migrate was not a no-op: $second"
say "ok: migrate ('${first##*$'\n'}'), then '${second##*$'\n'}'"
psql -q "$DB_URL" -v dashboard_password=dashboard-secret -f "$REPO/scripts/dashboard_role.sql" >/dev/null

# --- the four long-running processes ------------------------------------------------------------
HASH=$(printf '%s\n' "$PASSWORD" | "$PY" -m jobs hash-password --stdin)
"$PY" -c "
import sys, time
from devharness.http_sink import HttpSink
with HttpSink() as sink:
    print(sink.url, flush=True)
    [first] = sink.wait_for(1, timeout=1800)
    open(sys.argv[1], 'wb').write(first.body)
" "$WORK/alert.json" > "$WORK/sink.url" &
SINK_PID=$!
rm -f "$WORK/alert.json"
for _ in $(seq 50); do [ -s "$WORK/sink.url" ] && break; sleep 0.2; done
SINK_URL=$(cat "$WORK/sink.url")

podman run -d --name wm-dashboard "${run_env[@]}" -e DASHBOARD_DATABASE_URL="$DASHBOARD_DB_URL" \
    -e MONITOR_AUTH=password -e MONITOR_PASSWORD_HASH="$HASH" \
    "$IMAGE" dashboard --server.port "$DASHBOARD_PORT" >/dev/null
podman run -d --name wm-receiver "${run_env[@]}" -e STRIPE_WEBHOOK_SECRET="$SECRET" \
    "$IMAGE" receiver --host 127.0.0.1 --port "$RECEIVER_PORT" >/dev/null
podman run -d --name wm-watch "${run_env[@]}" -e MONITOR_ALERT_WEBHOOK_URL="$SINK_URL" \
    -e MONITOR_ALERT_INTERVAL_S=2 "$IMAGE" watch >/dev/null
podman run -d --name wm-schedule "${run_env[@]}" -e MONITOR_SCHEDULE='health-snapshot=* * * * *' \
    "$IMAGE" schedule >/dev/null
say "started: dashboard, receiver, watch, schedule"

wait_until() {  # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within ${limit}s"
        sleep 2
    done
}
wait_until 600 "dashboard health" curl -fsS "http://127.0.0.1:$DASHBOARD_PORT/_stcore/health"
wait_until 600 "receiver health" curl -fsS "http://127.0.0.1:$RECEIVER_PORT/healthz"
say "ok: /_stcore/health and /healthz answer"

# --- the receiver records a signed delivery ---------------------------------------------------
body='{"id":"evt_image_test_1","object":"event","type":"checkout.session.completed","created":1700000000,"livemode":false,"data":{"object":{"id":"cs_image_test_unknown","object":"checkout.session","payment_status":"paid","amount_total":1200,"currency":"eur","metadata":{}}}}'
signature=$("$PY" -c "import sys, time; from tracking.signing import stripe_signature; print(stripe_signature(sys.argv[1].encode(), sys.argv[2], timestamp=int(time.time())))" "$body" "$SECRET")
answer=$(curl -sS -H "Stripe-Signature: $signature" -H 'Content-Type: application/json' --data "$body" \
    "http://127.0.0.1:$RECEIVER_PORT/stripe/webhook")
recorded=$(sql "SELECT processing_status FROM webhook_events WHERE stripe_event_id = 'evt_image_test_1'")
[ "$recorded" = failed ] || fail "receiver: answered $answer, recorded '$recorded'"
say "ok: receiver recorded the signed delivery (status $recorded: no such session), answered $answer"

# --- watch alerts, schedule runs a job ---------------------------------------------------------
wait_until 300 "watch's alert at the sink" test -s "$WORK/alert.json"
grep -q payment_event_failed "$WORK/alert.json" || fail "alert: $(cat "$WORK/alert.json")"
say "ok: watch sent the payment_event_failed alert to the sink"
scheduled_run() { [ "$(sql "SELECT count(*) FROM job_runs WHERE job = 'health-snapshot' AND trigger = 'schedule' AND status = 'completed'")" -ge 1 ]; }
wait_until 300 "schedule's health-snapshot run" scheduled_run
say "ok: schedule ran health-snapshot"

# --- the Overview in Chromium, logged in -------------------------------------------------------
"$PY" - "http://127.0.0.1:$DASHBOARD_PORT" "$PASSWORD" <<'EOF'
import sys
from devharness.browser import (PLOTLY_SELECTOR, chromium_page, exception_texts, log_in, wait_for_count,
                                wait_for_script)
url, password = sys.argv[1:]
with chromium_page() as page:
    page.goto(url)
    wait_for_script(page)
    assert page.locator(PLOTLY_SELECTOR).count() == 0, "charts visible before logging in"
    log_in(page, password)
    page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
    charts = wait_for_count(page, PLOTLY_SELECTOR, 4, timeout_ms=60_000)
    assert charts >= 4 and not exception_texts(page), (charts, exception_texts(page))
print(f"{charts} charts")
EOF
say "ok: Chromium logged in and the Overview rendered"

# --- health checks, then a stop signal ----------------------------------------------------------
for name in wm-dashboard wm-receiver wm-watch wm-schedule; do
    podman healthcheck run "$name" >/dev/null 2>&1 || fail "$name: HEALTHCHECK failed"
done
say "ok: every HEALTHCHECK passes"
for name in wm-dashboard wm-receiver wm-watch wm-schedule; do
    begin=$(date +%s%N)
    podman stop -t 20 "$name" >/dev/null
    took_ms=$(( ($(date +%s%N) - begin) / 1000000 ))
    code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
    # 143 = 128 + SIGTERM: uvicorn re-raises the signal once it has shut down (a clean stop).
    [ "$code" = 0 ] || [ "$code" = 143 ] || fail "$name: exit $code after SIGTERM ($(podman logs --tail 5 "$name" 2>&1))"
    [ "$took_ms" -lt 10000 ] || fail "$name: took ${took_ms} ms to stop"
    say "ok: $name stopped in ${took_ms} ms, exit $code"
done
say "PASSED in $(( $(date +%s) - START )) s"
