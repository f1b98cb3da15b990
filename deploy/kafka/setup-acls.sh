#!/usr/bin/env bash
# ================================================================
# FILE: setup-acls.sh
# PATH: /deploy/kafka/setup-acls.sh
# DESCRIPTION: Kafka users (SCRAM-SHA-512) and ACLs of the compose stack: who may write what
# ================================================================
# Run by lkms503-kafka-setup in the broker's network namespace, on its loopback listener
# (127.0.0.1:9095, the only super user). Idempotent: every start sets the same users and ACLs.
#
#   lkms101-contacts  writes and creates lkern.contacts.*      (the owner of contacts)
#   lkms102-orders    writes and creates lkern.orders.*        (its events and lkern.orders.dlq)
#                     reads lkern.contacts.* in group lkms102-orders-group (and may create them
#                     when it starts first; creating is not writing)
# Nobody else may do anything (allow.everyone.if.no.acl.found=false).
set -euo pipefail

BIN=/opt/kafka/bin
SERVER=127.0.0.1:9095

# === USERS ===
add_user() {
    "$BIN/kafka-configs.sh" --bootstrap-server "$SERVER" --alter --entity-type users \
        --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}
add_user lkms101-contacts "${LKMS101_KAFKA_PASSWORD:?}"
add_user lkms102-orders "${LKMS102_KAFKA_PASSWORD:?}"

# === ACLS ===
acl() {
    "$BIN/kafka-acls.sh" --bootstrap-server "$SERVER" --add "$@"
}
# contacts: its own topics only
acl --allow-principal User:lkms101-contacts --operation Write --operation Describe \
    --operation Create --topic lkern.contacts. --resource-pattern-type prefixed
acl --allow-principal User:lkms101-contacts --operation IdempotentWrite --cluster

# orders: its own topics (events and dead letters) ...
acl --allow-principal User:lkms102-orders --operation Write --operation Describe \
    --operation Create --topic lkern.orders. --resource-pattern-type prefixed
acl --allow-principal User:lkms102-orders --operation IdempotentWrite --cluster
# ... and contact events, read only, in its consumer group
acl --allow-principal User:lkms102-orders --operation Read --operation Describe \
    --operation Create --topic lkern.contacts. --resource-pattern-type prefixed
acl --allow-principal User:lkms102-orders --operation Read --operation Describe \
    --group lkms102-orders-group

"$BIN/kafka-acls.sh" --bootstrap-server "$SERVER" --list
