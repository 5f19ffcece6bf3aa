# Body of the cordon-agent package's post-installation script (.deb postinst
# "configure", .rpm %post). POSIX sh; paths honour DPKG_ROOT (see agent-preremove.sh).
#
# Creates /etc/cordon and /var/lib/cordon (0700, root), enables the boot re-apply unit and
# the agent unit but starts nothing: the agent unit starts only once
# /etc/cordon/agent.toml exists (ConditionPathExists), i.e. after `cordon agent enroll`.
# On an upgrade, an agent that was running is restarted on the new binary; installed
# again on a host that is still enrolled (/etc/cordon/agent.toml), the agent is started.
#
# The units are enabled once per installation, not on every upgrade (trial29 L-a: an
# upgrade re-enabled units the admin had disabled): the marker
# /var/lib/cordon/.package-enabled-units says this installation did it; the pre-removal
# script deletes it when it disables the units, so installing again after a removal
# enables them (and says how to enroll) again (trial29 L-f).

R="${DPKG_ROOT:-}"
marker="$R/var/lib/cordon/.package-enabled-units"
install -d -m 0700 "$R/etc/cordon" "$R/var/lib/cordon"
chmod 0700 "$R/etc/cordon" "$R/var/lib/cordon"
first=no
[ -e "$marker" ] || first=yes
if command -v systemctl >/dev/null 2>&1; then
  if [ "$first" = yes ]; then
    systemctl --root="${R:-/}" enable cordon-reapply.service cordon-agent.service >/dev/null 2>&1 || true
  fi
  if [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    [ "$upgrading" = yes ] && systemctl try-restart cordon-agent.service || true
  fi
fi
(umask 077; : >"$marker") 2>/dev/null || true
# Installed again on a host that is still enrolled (a removal keeps /etc/cordon; trial34
# L3: the hint said "Enroll" and the agent stayed stopped, the host offline on the
# server): the agent starts as it would at boot, and the hint says so.
cfg="$R/etc/cordon/agent.toml"
if [ "$first" = yes ] && [ -e "$cfg" ]; then
  host=$(sed -n 's/^host_id *= *"\(.*\)".*/\1/p' "$cfg" | head -n1)
  if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
    && systemctl start cordon-agent.service; then
    echo "cordon-agent: installed; this host is already enrolled${host:+ as host $host} ($cfg): started the agent (systemctl start cordon-agent)" >&2
  else
    echo "cordon-agent: installed; this host is already enrolled${host:+ as host $host} ($cfg). Start the agent:" >&2
    echo "  sudo systemctl start cordon-agent" >&2
  fi
elif [ "$first" = yes ]; then
  echo "cordon-agent: installed. Enroll, then start the agent:" >&2
  echo "  sudo cordon agent enroll --server https://SERVER:8443 --token TOKEN --ca-fingerprint FP" >&2
  echo "  sudo systemctl start cordon-agent" >&2
fi
exit 0
