#!/bin/sh
# keepalived notify script for conntrackd (conntrack-tools' primary-backup.sh, trimmed):
#   primary-backup.sh primary|backup|fault [CONNTRACKD_CONFIG]
# Called by keepalived's vrrp_sync_group notify_master/notify_backup/notify_fault
# (docs/examples/ha/keepalived.conf). The config path may also come from $CONNTRACKD_CONFIG.
# acmegw runs on both nodes all the time with the same rules; its connmarks (PASS: production
# flow, kernel fast path) arrive with the conntrack entries committed here. One step is its own:
# entries of flows acmegw took over on the peer (TAKEN) are deleted after the commit. Their
# socket lived on the peer; kept, they would route the client's packets to a local socket that
# does not exist here (IPv4: black-holed, the client hangs until its own timeout; IPv6: reset).
# Deleted, the next packet is forwarded to production, which resets the connection (acmegw had
# already reset production's side): the client sees a reset at once and retries.
# ACMEGW_MARK_TAKEN / ACMEGW_MARK_MASK must match acmegw's --mark-taken / --mark-mask.
CONNTRACKD_BIN=${CONNTRACKD_BIN:-/usr/sbin/conntrackd}
CONNTRACKD_CONFIG=${2:-${CONNTRACKD_CONFIG:-/etc/conntrackd/conntrackd.conf}}
CONNTRACK_BIN=${CONNTRACK_BIN:-/usr/sbin/conntrack}
ACMEGW_MARK_TAKEN=${ACMEGW_MARK_TAKEN:-0x00200000}
ACMEGW_MARK_MASK=${ACMEGW_MARK_MASK:-0x00f00000}
ct() {
    "$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" "$@" || logger -t primary-backup "conntrackd $* failed"
}
# Transition log next to the config (the e2e test reads it for its timings).
log() { echo "$(date +%s.%N) $1" >>"${CONNTRACKD_CONFIG%.conf}.transitions" 2>/dev/null || true; }
log "$1"

case "$1" in
  primary)
    ct -c   # commit the external cache (the peer's entries, marks included) into the kernel
    log committed
    for f in ipv4 ipv6; do   # acmegw: flows taken over on the peer are gone with its sockets
        "$CONNTRACK_BIN" -D -f "$f" -m "$ACMEGW_MARK_TAKEN/$ACMEGW_MARK_MASK" >/dev/null 2>&1 || true
    done
    ct -f   # flush the internal and external caches
    ct -R   # resync the internal cache with the kernel table
    ct -B   # send a bulk update to the backup
    ;;
  backup)
    if ! "$CONNTRACKD_BIN" -C "$CONNTRACKD_CONFIG" -s >/dev/null 2>&1; then
        ct -d   # not running: start it (daemon mode)
    fi
    ct -t   # shorten the kernel's timers: entries of flows now forwarded by the peer expire
    ct -n   # request a resync from the master
    ;;
  fault)
    ct -t
    ;;
  *)
    echo "usage: primary-backup.sh {primary|backup|fault} [CONNTRACKD_CONFIG]" >&2
    exit 1
    ;;
esac
log "$1-done"
exit 0
