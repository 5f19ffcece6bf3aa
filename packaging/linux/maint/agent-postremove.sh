# Body of the cordon-agent package's post-removal script (.deb postrm "purge", .rpm
# %postun on erase, which is rpm's purge). POSIX sh; paths honour DPKG_ROOT.
#
# Purge leaves nothing behind: the units are the package's own files (already gone), the
# rules were released by the pre-removal script (which refuses while quarantined), and
# here go the enrollment (certificate, key, agent.toml), the state directory, any
# enable link left in /etc/systemd/system and this network namespace's runtime registry
# (/run/cordon/net-<inode of the namespace>: which state directory records which table;
# trial26 L13 — it stayed until reboot). Other namespaces' entries (containers, each
# with quarantines of its own) are left alone; /run/cordon goes once it is empty.

R="${DPKG_ROOT:-}"
if [ "$purging" = yes ]; then
  rm -rf "$R/etc/cordon" "$R/var/lib/cordon"
  netns=$(stat -L -c %i /proc/self/ns/net 2>/dev/null || true)
  if [ -n "$netns" ]; then
    rm -rf "$R/run/cordon/net-$netns"
    rmdir "$R/run/cordon" 2>/dev/null || true
  fi
  for d in "$R"/etc/systemd/system/*.wants; do
    [ -d "$d" ] || continue
    rm -f "$d/cordon-agent.service" "$d/cordon-reapply.service" "$d/cordon-watch.service" "$d/cordon-watch.path"
    rmdir "$d" 2>/dev/null || true
  done
fi
if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
  # A unit of the package that had failed (cordon-reapply where rules cannot be verified)
  # stays listed by `systemctl --failed` as "not-found failed" after its file is gone,
  # until reset-failed or a reboot (trial39 LOW-1). Only once the files are gone: an
  # upgrade keeps the units and their state.
  if [ ! -e /usr/lib/systemd/system/cordon-reapply.service ] && [ ! -e /lib/systemd/system/cordon-reapply.service ]; then
    systemctl reset-failed cordon-agent.service cordon-reapply.service cordon-watch.service cordon-watch.path >/dev/null 2>&1 || true
  fi
fi
exit 0
