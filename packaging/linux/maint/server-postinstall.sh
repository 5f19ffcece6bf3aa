# Body of the cordon-server package's post-installation script (.deb postinst
# "configure", .rpm %post). POSIX sh; paths honour DPKG_ROOT.
#
# /var/lib/cordon-server (the CA key, the database) is 0700 and belongs to the server's
# system user. The unit is enabled but not started: it starts once `server init` has
# created the CA (ConditionPathExists).

# The unit is enabled once per installation, not on every upgrade (trial29 L-a: an
# upgrade re-enabled a unit the admin had disabled): the marker
# /var/lib/cordon-server/.package-enabled-units (root's, read by no program) says this
# installation did it; the pre-removal script deletes it when it disables the unit.

R="${DPKG_ROOT:-}"
marker="$R/var/lib/cordon-server/.package-enabled-units"
first=no
[ -e "$marker" ] || first=yes
install -d -m 0700 "$R/var/lib/cordon-server"
chmod 0700 "$R/var/lib/cordon-server"
if [ -n "$R" ]; then
  chroot_chown() { uid=$(awk -F: '$1=="cordon-server"{print $3}' "$R/etc/passwd"); gid=$(awk -F: '$1=="cordon-server"{print $3}' "$R/etc/group"); chown "$uid:$gid" "$@"; }
  chroot_chown "$R/var/lib/cordon-server"
else
  chown cordon-server:cordon-server /var/lib/cordon-server
fi
if command -v systemctl >/dev/null 2>&1; then
  if [ "$first" = yes ]; then
    systemctl --root="${R:-/}" enable cordon-server.service >/dev/null 2>&1 || true
  fi
  if [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    [ "$upgrading" = yes ] && systemctl try-restart cordon-server.service || true
  fi
fi
(umask 077; : >"$marker") 2>/dev/null || true
if [ "$first" = yes ]; then
  echo "cordon-server: installed. Create the CA and the admin token, then start it:" >&2
  echo "  sudo -u cordon-server cordon-server server init --data /var/lib/cordon-server --name SERVER.NAME" >&2
  echo "  sudo systemctl start cordon-server" >&2
fi
exit 0
