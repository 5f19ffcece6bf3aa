# Body of the cordon-server package's post-removal script (.deb postrm; .rpm %postun,
# where purging is always "no": rpm has no purge, and an erase keeps the CA). POSIX sh;
# paths honour DPKG_ROOT.
#
# Purge (.deb only) removes the server's data (CA, database: keep a backup!), the enable
# link, the system user and its group.

R="${DPKG_ROOT:-}"
if [ "$purging" = yes ]; then
  rm -rf "$R/var/lib/cordon-server"
  rm -f "$R"/etc/systemd/system/*.wants/cordon-server.service
  if grep -q '^cordon-server:' "$R/etc/passwd" 2>/dev/null; then
    if [ -n "$R" ]; then userdel --root "$R" cordon-server || true; else userdel cordon-server || true; fi
  fi
  # userdel removes the user's own group only where login.defs says USERGROUPS_ENAB yes;
  # the group useradd --user-group made goes here either way.
  if grep -q '^cordon-server:' "$R/etc/group" 2>/dev/null; then
    if [ -n "$R" ]; then groupdel --root "$R" cordon-server || true; else groupdel cordon-server || true; fi
  fi
fi
if [ -z "$R" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
exit 0
