#!/bin/bash
# The README's "Across hosts" path on two "hosts" made of network namespaces:
#
#   host A: netns, 10.213.0.1/24 <--veth--> host B: netns, 10.213.0.2/24
#
# Both share this machine's file system, so binaries and runfiles are at the
# same path on each, as the README asks. mpirun runs on A with a hostfile
# naming both addresses; Open MPI starts orted on B through plm_rsh_agent,
# here a script that runs the command inside B (`ip netns exec`) where the
# README uses ssh. Cases, 4 ranks, 2 per host:
#   1. the CLI's sum over TCP only (btl self,tcp on the test subnet);
#   2. the CLI's sum with fanout-mpirun's own defaults (self,vader,tcp): the
#      README's command as written;
#   3. mpi_spmd_test and 4. mpi_conformance_ranks_test over TCP only.
# Each case: exit 0 within its bound, the answer (or gtest's PASSED), ranks
# 0,1 in A and 2,3 in B, orted started on B through the agent and nowhere
# else, nothing left running in either namespace afterwards. At the end,
# bytes must have crossed the veth pair.
#
# Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and `ip` (iproute2): without
# them it prints "SKIPPED: <why>" and exits 0, since Bazel has no skip status.
# Namespaces are named per run and the veth pair is created directly inside
# them (no name in the root namespace), so parallel runs do not collide; they
# are removed on any exit.
#
#   mpi_hosts_test.sh LAUNCHER CLI SPMD_TEST CONFORMANCE_RANKS_TEST
set -u
PATH=$PATH:/usr/sbin:/sbin
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac }
launcher=$(abs "$1") cli=$(abs "$2") spmd=$(abs "$3") ranks=$(abs "$4")
# Open MPI's session directory holds unix sockets whose paths must stay
# short; Bazel's test TMPDIR is too long for that.
export TMPDIR=/tmp
# gtest writes XML to this test's own test.xml when it sees XML_OUTPUT_FILE
# or GUNIT_OUTPUT: two suites run here and the last would stand for the
# whole test. Only skip() writes it.
xml_out=${XML_OUTPUT_FILE:-}
unset XML_OUTPUT_FILE GUNIT_OUTPUT GTEST_OUTPUT
readonly SUM=249972500250000000
readonly NET=10.213.0 HOST_A=10.213.0.1 HOST_B=10.213.0.2
# Seconds per mpirun; the slowest case takes ~6 s idle, ~60 s on a busy
# machine. 4 cases stay inside Bazel's 900 s for a large test.
readonly BOUND=150

skip() {
  echo "SKIPPED: $*"
  echo "SKIPPED: the README's \"Across hosts\" path was NOT tested on this machine"
  # Bazel's console cannot say "skipped"; its test.xml (for CI) can.
  if [ -n "$xml_out" ]; then
    local why=${*//&/&amp;}
    why=${why//</&lt;} why=${why//\"/&quot;}
    cat >"$xml_out" <<END
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="1" skipped="1">
  <testsuite name="mpi_hosts_test" tests="1" skipped="1">
    <testcase name="across_hosts" classname="mpi_hosts_test"><skipped message="$why"/></testcase>
  </testsuite>
</testsuites>
END
  fi
  exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (uid $(id -u))"
command -v ip >/dev/null || skip "no 'ip' command (apt-get install iproute2)"
command -v unshare >/dev/null || skip "no 'unshare' command (apt-get install util-linux)"
mpirun_bin=$(command -v "${FANOUT_MPIRUN:-mpirun}") || {
  echo "FAIL: no mpirun on PATH (apt-get install openmpi-bin)" >&2
  exit 1
}
mpi_dir=$(dirname "$(readlink -f "$mpirun_bin")") # where orted is too

run_id="fanout-hosts-$$-$RANDOM"
ns_a="$run_id-a" ns_b="$run_id-b"
# Hostnames per run too: Open MPI names session and shared memory files by them.
NAME_A="$ns_a" NAME_B="$ns_b"
work=$(mktemp -d "/tmp/$run_id.XXXX") || exit 1
created=()

case_pid=
cleanup() {
  local ns pid
  # Interrupted during a case: stop its mpirun first (timeout passes the
  # signal on), so that it can take its daemons down, for up to 5 s.
  if [ -n "$case_pid" ] && kill -TERM "$case_pid" 2>/dev/null; then
    for _ in $(seq 50); do
      kill -0 "$case_pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  for ns in "${created[@]}"; do
    # Whatever a failed case left in our own namespaces, and nothing else.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null || echo "warning: could not delete netns $ns" >&2
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces of earlier runs killed before their trap ran (their pid is gone).
for f in /run/netns/fanout-hosts-*-a /run/netns/fanout-hosts-*-b; do
  [ -e "$f" ] || continue
  pid=${f#/run/netns/fanout-hosts-}
  pid=${pid%%-*}
  kill -0 "$pid" 2>/dev/null || ip netns del "$(basename "$f")" 2>/dev/null
done

err=$(ip netns add "$ns_a" 2>&1) || skip "'ip netns add' refused: $err"
created+=("$ns_a")
err=$(ip netns add "$ns_b" 2>&1) || skip "'ip netns add' refused: $err"
created+=("$ns_b")
err=$(ip link add name veth-a netns "$ns_a" type veth peer name veth-b netns "$ns_b" 2>&1) ||
  skip "cannot create a veth pair: $err"
set -e
ip -n "$ns_a" addr add "$HOST_A/24" dev veth-a
ip -n "$ns_b" addr add "$HOST_B/24" dev veth-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set veth-a up
ip -n "$ns_b" link set veth-b up
set +e
inode_a=$(stat -L -c %i "/run/netns/$ns_a") inode_b=$(stat -L -c %i "/run/netns/$ns_b")
echo "host A: $HOST_A, $NAME_A, netns $ns_a (net:[$inode_a])"
echo "host B: $HOST_B, $NAME_B, netns $ns_b (net:[$inode_b])"

printf '%s slots=2\n%s slots=2\n' "$HOST_A" "$HOST_B" >"$work/hostfile"

# `on_host NS NAME PROGRAM ARGS...` runs PROGRAM on a "host": in network
# namespace NS with its own hostname NAME (a UTS namespace). Real hosts have
# their own names, and Open MPI keys its session directory and its shared
# memory files (/dev/shm/vader_segment.HOSTNAME.*) by it: with one name the
# two "hosts", which share /dev/shm and /tmp, would map each other's segments
# and crash in vader.
cat >"$work/on_host" <<'END'
#!/bin/sh
ns=$1 name=$2
shift 2
# shellcheck disable=SC2016 # expanded by the inner shell
exec ip netns exec "$ns" unshare --uts \
  sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "$name" "$@"
END

# The remote shell: Open MPI calls it as `agent HOST COMMAND...`, COMMAND
# being a shell command line that starts orted. Only our two hosts exist.
cat >"$work/agent" <<END
#!/bin/sh
host=\$1
shift
echo "\$host" >>"$work/agent.log"
case "\$host" in
  $HOST_A) ns=$ns_a name=$NAME_A ;;
  $HOST_B) ns=$ns_b name=$NAME_B ;;
  *) echo "agent: \$host is not a test host" >&2; exit 255 ;;
esac
PATH=$mpi_dir:\$PATH
export PATH
exec "$work/on_host" "\$ns" "\$name" sh -c "\$*"
END

# Each rank notes where it runs (network namespace, hostname), then becomes
# the program.
cat >"$work/rank" <<END
#!/bin/sh
echo "\$(readlink /proc/self/ns/net) \$(cat /proc/sys/kernel/hostname)" >"$work/rank.\$OMPI_COMM_WORLD_RANK"
exec "\$@"
END
chmod +x "$work/on_host" "$work/agent" "$work/rank"
# Entering a netns remounts /sys, and a UTS namespace is one more: some
# containers allow `ip netns add` but refuse these.
if ! err=$("$work/on_host" "$ns_b" "$NAME_B" true 2>&1); then
  case "$err" in
    *"not permitted"* | *"denied"*)
      skip "cannot run a command in a namespace under its own hostname: $err" ;;
  esac
  echo "FAIL: cannot run a command on host B: $err" >&2
  exit 1
fi

# shellcheck disable=SC2054 # self,tcp is one MCA value
tcp_only=(--mca btl self,tcp --mca btl_tcp_if_include "$NET.0/24")
failures=0
out="$work/out"

fail() {
  echo "FAIL [$case_name]: $*" >&2
  failures=$((failures + 1))
}

check_sum() {
  local got
  got=$(grep -cxF -- "$SUM" "$out")
  [ "$got" = 1 ] || fail "answer $SUM printed $got times, expected once"
  [ "$(grep -c '^backend: mpi$' "$out")" = 1 ] || fail "'backend: mpi' not printed once"
}

check_gtest() {
  grep -q 'PASSED' "$out" || fail "gtest did not report PASSED"
}

# run_case NAME CHECK MPIRUN_ARGS... -- PROGRAM ARGS...: 4 ranks, 2 per host,
# mpirun on host A; CHECK is a function that looks at $out.
run_case() {
  case_name=$1
  local check=$2
  shift 2
  local args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    args+=("$1")
    shift
  done
  shift
  local failures_before=$failures start=$SECONDS rc
  rm -f "$work"/rank.* "$work/agent.log"
  timeout -k 5 "$BOUND" "$work/on_host" "$ns_a" "$NAME_A" "$launcher" \
    --hostfile "$work/hostfile" -np 4 \
    --mca plm_rsh_agent "$work/agent" \
    --mca oob_tcp_if_include "$NET.0/24" \
    "${args[@]}" "$work/rank" "$@" >"$out" 2>&1 &
  # In the background so that a signal to this script is handled at once
  # (bash runs traps only between commands); see cleanup.
  case_pid=$!
  wait "$case_pid"
  rc=$?
  case_pid=
  echo "$case_name: exit $rc after $((SECONDS - start))s"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    fail "did not finish within ${BOUND}s"
  elif [ "$rc" != 0 ]; then
    fail "exit $rc"
  fi
  "$check"
  local r want got
  for r in 0 1 2 3; do
    if [ "$r" -lt 2 ]; then want="net:[$inode_a] $NAME_A"; else want="net:[$inode_b] $NAME_B"; fi
    got=$(cat "$work/rank.$r" 2>/dev/null || echo "did not start")
    [ "$got" = "$want" ] || fail "rank $r ran in '$got', expected '$want'"
  done
  # orted on B through the agent, once; A is mpirun's own host.
  got=$(sort "$work/agent.log" 2>/dev/null | tr '\n' ' ')
  [ "$got" = "$HOST_B " ] || fail "agent calls: '$got', expected '$HOST_B ' once"
  local ns left pid
  for ns in "$ns_a" "$ns_b"; do
    left=$(ip netns pids "$ns")
    if [ -n "$left" ]; then
      fail "left running in $ns:"
      # shellcheck disable=SC2086 # a list of pids
      ps -o pid=,args= -p $left | sed 's/^/    /' >&2
      for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
    fi
  done
  if [ "$failures" != "$failures_before" ]; then
    echo "--- output of $case_name:" >&2
    tail -n 40 "$out" | sed 's/^/    /' >&2
  fi
}

run_case "cli sum, 2 hosts x 2 ranks, tcp only" check_sum "${tcp_only[@]}" -- \
  "$cli" --backend=mpi --workload=sum
run_case "cli sum, 2 hosts x 2 ranks, fanout-mpirun's defaults (self,vader,tcp)" \
  check_sum -- "$cli" --backend=mpi --workload=sum
run_case "mpi_spmd_test, 2 hosts x 2 ranks, tcp only" check_gtest "${tcp_only[@]}" -- \
  "$spmd"
run_case "mpi_conformance_ranks_test, 2 hosts x 2 ranks, tcp only" check_gtest \
  "${tcp_only[@]}" -- "$ranks"

# The ranks on B reached A only through the veth pair.
case_name=veth
bytes=$(ip -n "$ns_a" -s link show veth-a | awk '/RX:/ { getline; print $1; exit }')
echo "veth: $bytes bytes received by $HOST_A from $HOST_B"
[ "${bytes:-0}" -gt 100000 ] || fail "only ${bytes:-0} bytes crossed the veth pair"

[ "$failures" = 0 ] || {
  echo "$failures failure(s)" >&2
  exit 1
}
echo "all cases passed on 2 hosts"
