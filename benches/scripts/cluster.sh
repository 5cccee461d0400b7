#!/bin/sh
# A benchmark against a cluster: a fresh PostgreSQL database (hcbench on
# 127.0.0.1:5432) and a cluster name of its own on NATS (127.0.0.1:4222),
# then the bench named by the arguments with every server it starts on
# them.
#
#     benches/scripts/cluster.sh fanout --nodes 3 --procs 3 --subs 59700 --scenario latency
#     benches/scripts/cluster.sh fanout --nodes 3 --procs 3 --subs 39000 --scenario failover
#     benches/scripts/cluster.sh commands 64 10
set -eu
bench=$1
shift
psql -qh 127.0.0.1 -U postgres -d postgres -c 'DROP DATABASE IF EXISTS hcbench' -c 'CREATE DATABASE hcbench'
secret=$(mktemp)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret"
HALLCAST_BENCH_ARGS="--store postgres://postgres@127.0.0.1:5432/hcbench --bus nats://127.0.0.1:4222 --cluster bench-$$ --cluster-secret-file $secret" \
    exec cargo bench --bench "$bench" -- "$@"
