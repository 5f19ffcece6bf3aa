# Body of the cordon-server package's pre-installation script (.deb preinst "install"
# and "upgrade", .rpm %pre): the system user the server runs as. POSIX sh.

R="${DPKG_ROOT:-}"
if ! grep -q '^cordon-server:' "$R/etc/passwd" 2>/dev/null; then
  if [ -n "$R" ]; then
    useradd --root "$R" --system --user-group --home-dir /var/lib/cordon-server --no-create-home \
      --shell /usr/sbin/nologin --comment "Cordon management server" cordon-server
  else
    useradd --system --user-group --home-dir /var/lib/cordon-server --no-create-home \
      --shell /usr/sbin/nologin --comment "Cordon management server" cordon-server
  fi
fi
exit 0
