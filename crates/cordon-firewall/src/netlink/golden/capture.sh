#!/bin/sh
# Captures the netlink batch `nft -f` sends for each DIR/*.nft and writes it, as one hex
# line, to src/netlink/golden/<name>.hex (the goldens of encode/tests.rs).
# Needs root, nft, strace, python3. Runs nft in a throwaway network namespace so the
# machine's own firewall is never touched.
set -eu
dir=${1:-/tmp/cordon-golden}
out=$(cd "$(dirname "$0")" && pwd)
ns=cordon-golden-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
for f in "$dir"/*.nft; do
	name=$(basename "$f" .nft)
	ip netns exec "$ns" nft flush ruleset
	ip netns exec "$ns" strace -f -e trace=sendmsg -e write=all -xx -s 1000000 -o "$dir/$name.strace" nft -f "$f"
	python3 - "$dir/$name.strace" > "$out/$name.hex" <<'PY'
import re, sys
bufs, cur = [], None
for line in open(sys.argv[1]):
    m = re.match(r'\s*\* (\d+) bytes in buffer', line)
    if m:
        cur = bytearray(); bufs.append(cur); continue
    m = re.match(r'\s*\| [0-9a-f]{5}  ((?:[0-9a-f]{2} ?\s?)+)', line)
    if m and cur is not None:
        cur.extend(bytes.fromhex(m.group(1).replace(' ', '')))
# The batch is the sendmsg buffer that starts with NFNL_MSG_BATCH_BEGIN.
batches = [b for b in bufs if len(b) > 20 and b[4] == 0x10 and b[5] == 0]
assert len(batches) == 1, f"expected one batch, found {len(batches)}"
print(batches[0].hex())
PY
	echo "captured $name ($(wc -c < "$out/$name.hex") hex chars)"
done
