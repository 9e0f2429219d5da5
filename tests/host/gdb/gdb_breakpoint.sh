#!/usr/bin/env bash
# Host test: gdb on a user program, in batch mode (ctest "gdb-user-breakpoint").
# Boots the image under QEMU waiting for gdb (iso/run --gdb), loads the
# kernel's symbols and kvstore's through build/tessera.gdb, sets a hardware
# breakpoint on server_run, a libsys function that the name service runs
# before kvstore does, and checks that the first stop is in kvstore, with a
# backtrace through kvstore's main. With programs sharing one link address
# the name service would stop there first. The transcript is kept in
# BUILD/tests/host/gdb/gdb-user-breakpoint.log.
#   gdb_breakpoint.sh REPO BUILD
set -uo pipefail
repo=$1 build=$2
out=$build/tests/host/gdb
mkdir -p "$out"
log=$out/gdb-user-breakpoint.log
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$repo/iso/run" --iso "$build/tessera.iso" --cmdline "seed=1" --gdb --gdb-port "$port" --timeout 240 \
    --log "$out/gdb-user-breakpoint.serial.log" >"$out/gdb-user-breakpoint.run.log" 2>&1 &
runner=$!
trap 'kill $runner 2>/dev/null; wait $runner 2>/dev/null' EXIT
for _ in $(seq 100); do
  python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
  sleep 0.2
done

timeout 200 gdb -nx -batch -x "$build/tessera.gdb" \
    -ex "tessera-connect $port" \
    -ex "tessera-program kvstore" \
    -ex "hbreak server_run" \
    -ex "continue" \
    -ex "bt" \
    -ex "tessera-which" \
    -ex "print (char *)libsys_startup->args" \
    -ex "kill" >"$log" 2>&1
cat "$log"

fail=0
check() { # check DESCRIPTION REGEX
  if grep -Eq "$2" "$log"; then echo "ok: $1"; else echo "FAIL: $1 (no line matches /$2/)"; fail=1; fi
}
check "stopped at the breakpoint" "^(Thread [0-9]+ hit )?(Hardware assisted )?[Bb]reakpoint 1, (0x[0-9a-f]+ in )?server_run"
check "the backtrace goes through kvstore's main" "^#1 +0x[0-9a-f]+ in main .* at .*servers/kvstore/kvstore\.c:[0-9]+"
check "the stop is in kvstore's code" "^0x[0-9a-f]+: program kvstore$"
check "the process is kvstore" '^\$1 = 0x[0-9a-f]+ "kvstore'
exit $fail
