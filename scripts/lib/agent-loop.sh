# shellcheck shell=bash
# Sourced by scripts/package-test and scripts/wine-smoke (never run on its own): the
# sequence both run to show a packaged agent working against a packaged server on
# loopback — `server init` (name localhost, address 127.0.0.1), one-time enrollment
# tokens, `server run` on 127.0.0.1:PORT, an agent config with enforce = false and short
# timers, and the API calls that watch the server's view of the host (quarantine
# confirmed as `not_enforcing`, release as `normal`). Each caller enrolls and runs its own
# agent (the Linux binary, or cordon.exe under Wine) between these steps.
#
# Set before loop_server_start:
#   LOOP_SERVER  the server binary (`cordon-server`)
#   LOOP_DATA    its data directory (created by `server init`; must not exist yet)
# Set by loop_server_start:
#   LOOP_PORT, LOOP_FP (CA fingerprint, for --ca-fingerprint), LOOP_ADMIN (admin API
#   token), LOOP_SERVER_PID (stop it with loop_server_stop, also from a trap).

# FIELD of the JSON object on stdin (`None` when absent).
loop_field() {
  python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"
}

# PORT LOG: init, then `server run` in the background; waits (10 s at most) until it
# accepts connections. Fails (1) if init fails or the port never opens.
loop_server_start() {
  local init
  LOOP_PORT=$1
  init=$("$LOOP_SERVER" server init --json --data "$LOOP_DATA" --name localhost --ip 127.0.0.1) || return 1
  LOOP_FP=$(loop_field ca_fingerprint <<<"$init")
  LOOP_ADMIN=$(loop_field admin_token <<<"$init")
  "$LOOP_SERVER" server run --listen "127.0.0.1:$LOOP_PORT" --data "$LOOP_DATA" >"$2" 2>&1 &
  LOOP_SERVER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$LOOP_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

loop_server_stop() {
  [ -n "${LOOP_SERVER_PID:-}" ] && kill "$LOOP_SERVER_PID" 2>/dev/null
  LOOP_SERVER_PID=""
}

# [LABELS]: prints a new one-time enrollment token (the server may be running).
loop_token() {
  "$LOOP_SERVER" server token create --json --data "$LOOP_DATA" ${1:+--labels "$1"} | loop_field token
}

# ENROLLED_TOML OUT_TOML: the enrolled agent.toml with enforce = false (nothing is ever
# applied by these tests' agents), heartbeat and retry every second. OUT may be ENROLLED.
loop_agent_config() {
  { printf 'enforce = false\nheartbeat_secs = 1.0\nretry_secs = 1.0\n'
    grep -v -e '^enforce *=' -e '^heartbeat_secs *=' -e '^retry_secs *=' "$1"; } >"$2.new" && mv "$2.new" "$2"
}

# The API client (the server binary's own) as the admin, pinned to the server's CA.
loop_api() {
  CORDON_SERVER="https://127.0.0.1:$LOOP_PORT" CORDON_TOKEN=$LOOP_ADMIN CORDON_CA=$LOOP_DATA/ca.pem "$LOOP_SERVER" "$@"
}

# HOST FIELD: the field of `hosts show HOST` (empty when the call fails).
loop_host_field() {
  loop_api hosts show "$1" --json 2>/dev/null | loop_field "$2" 2>/dev/null || true
}

# HOST FIELD VALUE SECONDS: waits until the server says FIELD = VALUE for HOST.
loop_wait_field() {
  local end=$((SECONDS + $4))
  while [ $SECONDS -lt "$end" ]; do
    [ "$(loop_host_field "$1" "$2")" = "$3" ] && return 0
    sleep 0.3
  done
  return 1
}

# HOST SECONDS: waits until the host has reported once (last_seen set).
loop_wait_seen() {
  local end=$((SECONDS + $2)) v
  while [ $SECONDS -lt "$end" ]; do
    v=$(loop_host_field "$1" last_seen)
    [ -n "$v" ] && [ "$v" != None ] && return 0
    sleep 0.3
  done
  return 1
}
