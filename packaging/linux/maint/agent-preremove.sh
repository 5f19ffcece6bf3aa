# Body of the cordon-agent package's pre-removal script (the .deb prerm on "remove", the
# .rpm %preun on erase; scripts/package puts a header before it that sets `removing` and
# `remove_cmd`, the package manager's removal command the refusal names: apt-get remove
# or dnf remove, trial34 L11). POSIX sh.
#
# Removing Cordon from a quarantined host would leave it cut off with no tool to release
# it (and on Linux the rules would vanish only at the next reboot, unannounced). So:
#   * quarantined (a recorded quarantine under any table name: any <table>.json or
#     <table>.claims.json in the state directory; or `cordon status` not saying "released", which also finds
#     Cordon's tables by their ownership marks under any name): refuse, saying to stop
#     the tamper watcher and the agent (they re-apply the quarantine) and release
#     first; nothing is stopped or changed;
#   * CORDON_FORCE_REMOVE=1: stop the agent, `cordon release --force` (every claim, every
#     backend), say so, then go on with the removal;
#   * otherwise: stop and disable the units, delete the agent's own records
#     (agent-paths.json, agent-desired.json: no claim stands), go on.
# Paths honour DPKG_ROOT (set by dpkg for an installation into another root; empty
# otherwise, and never set by rpm), which is how scripts/package-test runs this script
# against a throwaway root without touching this machine.

[ "$removing" = yes ] || exit 0
R="${DPKG_ROOT:-}"
state_dir="$R/var/lib/cordon"
cordon="$R/usr/bin/cordon"
units="cordon-agent.service cordon-watch.path cordon-watch.service cordon-reapply.service"
systemd_live() { [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

status="released"
if [ -x "$cordon" ]; then
  if out=$("$cordon" status --state-dir "$state_dir" 2>&1); then
    status=$(printf '%s\n' "$out" | sed -n 1p)
  else
    status="unknown ($(printf '%s' "$out" | tr '\n' ' '))"
  fi
fi
# A recorded quarantine counts even if status could not read the kernel: any
# <table>.json or <table>.claims.json, whatever --table it was made with. A table name
# is what `cordon --table` accepts (cordon_policy::TableName::new): 1 to 24 ASCII
# letters, digits and `_`, starting with a letter. Other files there are not a
# quarantine: an enrolled agent keeps agent-desired.json and agent-paths.json in the
# same directory, quarantined or not.
is_table_name() {
  case "$1" in
    [A-Za-z]*) ;;
    *) return 1 ;;
  esac
  case "$1" in
    *[!A-Za-z0-9_]*) return 1 ;;
  esac
  [ "${#1}" -le 24 ]
}
if [ "$status" = released ]; then
  for f in "$state_dir"/*.json; do
    [ -e "$f" ] || continue
    name=${f##*/}
    name=${name%.json}
    name=${name%.claims}
    if is_table_name "$name"; then
      status="recorded in $f"
      break
    fi
  done
fi

if [ "$status" != released ]; then
  if [ "${CORDON_FORCE_REMOVE:-0}" != 1 ]; then
    # `cordon status` failed (e.g. no CAP_NET_ADMIN in a container or image build): say
    # that it cannot tell, not that the host is quarantined (trial29 L-l).
    case "$status" in
      unknown*) headline="cannot tell whether this host is quarantined by Cordon (status: $status)" ;;
      *) headline="this host is quarantined by Cordon (status: $status)" ;;
    esac
    cat >&2 <<MSG
cordon-agent: NOT removed: $headline.
Removing the package now would leave it cut off with no tool to release it.
Release it first, then remove the package again:
  - through the Cordon server (web console, or \`cordon release HOST\` with the API), or
  - on this host, stop what keeps re-applying it, then release:
      sudo systemctl stop cordon-watch.path cordon-watch.service cordon-agent.service   (the tamper watcher, what starts it, the agent)
      sudo cordon release --force     (drops every claim: agent, Wazuh, Velociraptor, local; every table name)
  - check: sudo cordon status         (must say: released)
Or remove anyway and release now: CORDON_FORCE_REMOVE=1 (e.g. sudo CORDON_FORCE_REMOVE=1 ${remove_cmd:-apt-get remove} cordon-agent),
which runs \`cordon release --force\` before the package goes.
MSG
    exit 1
  fi
fi

# Stop what could re-apply or hold the tables (the agent, the tamper watcher and the
# .path unit that would start the watcher again) first.
if systemd_live; then
  systemctl stop $units >/dev/null 2>&1 || true
fi
if [ "$status" != released ]; then
  if "$cordon" release --force --state-dir "$state_dir" >&2; then
    echo "cordon-agent: CORDON_FORCE_REMOVE=1: released this host's quarantine (cordon release --force) before removal" >&2
  else
    echo "cordon-agent: CORDON_FORCE_REMOVE=1 but \`cordon release --force\` failed (above); package NOT removed" >&2
    exit 1
  fi
fi
# No claim is recorded now (released above, or none was): the enrolled agent's own
# records go with the package (trial34 H1): agent-paths.json kept the old server's paths
# open in every later quarantine of this host, a server that may be decommissioned (its
# address reused). The enrollment itself (/etc/cordon) stays until purge; an agent
# started again records its paths anew.
rm -f "$state_dir/agent-paths.json" "$state_dir/agent-desired.json"
if command -v systemctl >/dev/null 2>&1; then
  systemctl --root="${R:-/}" disable $units >/dev/null 2>&1 || true
fi
# The units are disabled: a later installation enables them again (agent-postinstall.sh).
rm -f "$R/var/lib/cordon/.package-enabled-units"
exit 0
