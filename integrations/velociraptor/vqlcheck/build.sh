#!/bin/sh
# Builds vqlcheck against Velociraptor's VQL engine (vfilter) from source trees in SRC:
#   SRC/vfilter      github.com/Velocidex/vfilter (HEAD)
#   SRC/ordereddict  github.com/Velocidex/ordereddict
#   SRC/participle   github.com/alecthomas/participle, tag v2.1.4
#   SRC/repr         github.com/alecthomas/repr, tag v0.4.0 (newer tags need Go 1.22)
#   SRC/json         github.com/Velocidex/json
#   SRC/yaml         github.com/Velocidex/yaml, branch v2
#   SRC/errors       github.com/pkg/errors (Debian: golang-github-pkg-errors-dev)
#   SRC/xtext        golang.org/x/text (Debian: golang-golang-x-text-dev)
# Go from Debian (golang-go, 1.19 is enough); no module proxy is used.
# Usage: build.sh SRC && ./vqlcheck ../*.yaml && ./vqlcheck run ../X.yaml key=value ...
set -eu
SRC=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cp "$here/main.go" "$here/run.go" "$work/"
[ -f "$SRC/errors/go.mod" ] || echo 'module github.com/pkg/errors' > "$SRC/errors/go.mod"
for m in github.com/stretchr/testify gopkg.in/check.v1; do
  d="$work/stubs/$(echo "$m" | tr / _)"; mkdir -p "$d"; echo "module $m" > "$d/go.mod"
done
cat > "$work/go.mod" <<MOD
module vqlcheck

go 1.19

require (
	www.velocidex.com/golang/vfilter v0.0.0
	github.com/Velocidex/ordereddict v0.0.0
	github.com/Velocidex/yaml/v2 v2.2.8
)

replace (
	www.velocidex.com/golang/vfilter => $SRC/vfilter
	github.com/Velocidex/ordereddict => $SRC/ordereddict
	github.com/alecthomas/participle/v2 => $SRC/participle
	github.com/alecthomas/repr => $SRC/repr
	github.com/Velocidex/json => $SRC/json
	github.com/Velocidex/yaml/v2 => $SRC/yaml
	github.com/pkg/errors => $SRC/errors
	golang.org/x/text => $SRC/xtext
	github.com/stretchr/testify => $work/stubs/github.com_stretchr_testify
	gopkg.in/check.v1 => $work/stubs/gopkg.in_check.v1
)
MOD
cd "$work" && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go build -o "$here/vqlcheck" .
