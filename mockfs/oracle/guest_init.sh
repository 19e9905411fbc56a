#!/bin/sh
# Guest /init for the abi-harness kdump oracle (generated into the initramfs by
# mockfs/oracle/initramfs.py; runs INSIDE the QEMU guest only).
#
# One script serves both kernels: when /proc/vmcore exists we are the capture
# kernel, otherwise the production kernel.  Everything recorded goes to the
# console as "@@ABI <state> <key> <token>" lines: a token "." opens the key
# (empty value), every further token is a base64 chunk of its value.  A state
# block is framed by "@@ABI-BEGIN <state>" and "@@ABI-END <state> <nkeys>".
# Progress: "@@STAGE <name>" and "@@PROGRESS <text>"; failures: "@@FAIL <reason>";
# success: "@@DONE".

/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# Keep kernel messages from interleaving with the record lines (panic and
# sysrq output still appear: the kernel raises the level for those itself).
dmesg -n 1

. /oracle.conf

STATE=none
NKEYS=0
WN=0

stage() { echo "@@STAGE $1"; }
fail() { echo "@@FAIL $*"; sync; poweroff -f; while :; do sleep 1; done; }

# emit KEY < value   (must never be used on the right of a pipe: NKEYS)
emit() {
    NKEYS=$((NKEYS + 1))
    echo "@@ABI $STATE $1 ."
    base64 -w 64 | while read -r chunk; do echo "@@ABI $STATE $1 $chunk"; done
}
emit_str() { printf '%s' "$2" > /tmp/v; emit "$1" < /tmp/v; }
begin() { STATE=$1; NKEYS=0; WN=0; echo "@@ABI-BEGIN $STATE"; }
end() { echo "@@ABI-END $STATE $NKEYS"; }

# rec_file PATH [nocontent]: presence, stat and (for regular files) content.
rec_file() {
    if [ ! -e "$1" ]; then emit_str "file#$1#stat" "absent"; return; fi
    emit_str "file#$1#stat" "$(stat -c '%a %u %g %s %F' "$1")"
    [ -f "$1" ] || return
    [ "$2" = nocontent ] && return
    cat "$1" > /tmp/c 2> /tmp/e
    emit_str "file#$1#read_rc" "$?"
    emit "file#$1#content" < /tmp/c
    emit "file#$1#read_error" < /tmp/e
}

list_dump_files() {
    {
        for p in $DUMP_FILES; do echo "$p"; done
        for p in $DUMP_GLOBS; do [ -e "$p" ] && echo "$p"; done
    } | sort -u > /tmp/list
}

rec_state() {
    list_dump_files
    while read -r p; do rec_file "$p"; done < /tmp/list
    rec_file /proc/vmcore nocontent
    emit cmdline < /proc/cmdline
    uname -r > /tmp/u; emit uname_r < /tmp/u
    uname -v > /tmp/u; emit uname_v < /tmp/u
    grep -i 'crash kernel' /proc/iomem > /tmp/u; emit iomem_crash_kernel < /tmp/u
    emit iomem < /proc/iomem
}

# try_write PATH DATA NEWLINE(1|0): write DATA (with echo, as a user would),
# record exit status, the shell's error message and what reads back.
try_write() {
    WN=$((WN + 1))
    emit_str "write#$WN#path" "$1"
    if [ "$3" = 1 ]; then
        emit_str "write#$WN#data" "$2
"
        ( echo "$2" > "$1" ) 2> /tmp/e
    else
        emit_str "write#$WN#data" "$2"
        ( echo -n "$2" > "$1" ) 2> /tmp/e
    fi
    emit_str "write#$WN#rc" "$?"
    emit "write#$WN#error" < /tmp/e
    cat "$1" > /tmp/c 2>&1
    emit "write#$WN#readback" < /tmp/c
    grep -i 'crash kernel' /proc/iomem > /tmp/c; emit "write#$WN#iomem_after" < /tmp/c
}

ro_write_probes() {
    for p in $RO_PROBES; do [ -e "$p" ] && try_write "$p" 0 1; done
}

production() {
    stage production-init
    CSIZE=$(cat /sys/kernel/kexec_crash_size 2> /dev/null)
    [ -n "$CSIZE" ] || fail "no /sys/kernel/kexec_crash_size"
    [ "$CSIZE" -gt 0 ] || fail "no crashkernel reservation (kexec_crash_size=$CSIZE)"

    begin production
    rec_state
    # Write tests while nothing is loaded (after kexec -p every write fails).
    try_write /sys/kernel/kexec_crash_size "$CSIZE" 1
    try_write /sys/kernel/kexec_crash_size "$(printf '0x%x' "$CSIZE")" 1
    try_write /sys/kernel/kexec_crash_size "$((CSIZE + 1))" 1
    try_write /sys/kernel/kexec_crash_size "abc" 1
    try_write /sys/kernel/kexec_crash_size "-1" 1
    if [ "$SHRINK_BY" -gt 0 ]; then
        # Really shrinks the reservation: by a small, unaligned amount.
        try_write /sys/kernel/kexec_crash_size "$((CSIZE - SHRINK_BY))" 1
    fi
    CSIZE=$(cat /sys/kernel/kexec_crash_size)
    try_write /sys/kernel/kexec_crash_size "$CSIZE" 0
    ro_write_probes
    end

    stage kexec-load
    begin production-loaded
    kexec -p /vmlinuz --initrd=/capture.img --append="$CAPTURE_APPEND" $KEXEC_FLAGS > /tmp/k 2>&1
    rc=$?
    emit_str "kexec_load#rc" "$rc"
    emit_str "kexec_load#append" "$CAPTURE_APPEND"
    emit_str "kexec_load#flags" "$KEXEC_FLAGS"
    emit "kexec_load#output" < /tmp/k
    rec_state
    try_write /sys/kernel/kexec_crash_size "$CSIZE" 1
    try_write /sys/kernel/kexec_crash_size "$((CSIZE - 4096))" 1
    # The armed kernel's own log, as late as the crash allows: what follows
    # (sysrq, panic) is only in the vmcore.  Read through syslog(2), not the
    # console, so "dmesg -n 1" above hides nothing from it.
    dmesg 2>&1 | gzip -c > /tmp/d
    emit "dmesg@gz" < /tmp/d
    end
    [ "$rc" = 0 ] || fail "kexec -p failed with status $rc: $(head -c 300 /tmp/k | tr '\n' ' ')"
    [ "$(cat /sys/kernel/kexec_crash_loaded)" = 1 ] || fail "kexec_crash_loaded is not 1"

    stage crash
    sync
    echo c > /proc/sysrq-trigger
    fail "still alive after sysrq-trigger c"
}

load_modules() {
    while read -r m; do
        insmod "/lib/modules/oracle/$m.ko" > /tmp/e 2>&1 || fail "insmod $m: $(cat /tmp/e)"
    done < /lib/modules/oracle/load-order
}

wait_block_device() {
    i=0
    while [ ! -b "$1" ]; do
        i=$((i + 1))
        [ "$i" -gt 200 ] && fail "$1 did not appear"
        usleep 50000
    done
}

copy_vmcore() {
    stage capture-disk
    load_modules
    wait_block_device /dev/vda
    magic=$(dd if=/dev/vda bs=512 count=1 2> /dev/null | head -c ${#DISK_MAGIC})
    [ "$magic" = "$DISK_MAGIC" ] || fail "/dev/vda is not the oracle disk"
    size=$(stat -c %s /proc/vmcore)
    stage "vmcore-copy size=$size"
    # In chunks, so that the console shows progress (and the host's idle
    # timeout does not fire on a large guest).  fullblock keeps offsets exact.
    total=$(( (size + 1048575) / 1048576 ))
    done_mb=0
    rc=0
    : > /tmp/e
    while [ "$done_mb" -lt "$total" ]; do
        dd if=/proc/vmcore of=/dev/vda bs=1M iflag=fullblock conv=notrunc \
            skip=$done_mb seek=$((done_mb + VMCORE_OFFSET / 1048576)) \
            count=$COPY_CHUNK_MB 2>> /tmp/e || { rc=$?; break; }
        done_mb=$((done_mb + COPY_CHUNK_MB))
        [ "$done_mb" -gt "$total" ] && done_mb=$total
        echo "@@PROGRESS vmcore copied $done_mb/$total MiB"
    done
    sync
    printf '%s\nversion=1\noffset=%s\nlength=%s\ndd_rc=%s\n' "$VMCORE_MAGIC" \
        "$VMCORE_OFFSET" "$size" "$rc" > /tmp/h
    dd if=/tmp/h of=/dev/vda bs=4096 count=1 conv=sync,fsync 2> /dev/null || fail "header write"
    sync
    begin capture-copy
    emit_str "vmcore_copy#rc" "$rc"
    emit_str "vmcore_copy#length" "$size"
    emit "vmcore_copy#dd_output" < /tmp/e
    end
    [ "$rc" = 0 ] || fail "dd of /proc/vmcore failed with status $rc"
}

capture() {
    stage capture-init
    begin capture
    rec_state
    vmcore-dmesg /proc/vmcore 2>&1 | gzip -c > /tmp/d
    emit "vmcore_dmesg@gz" < /tmp/d
    try_write /sys/kernel/kexec_crash_size 0 1
    try_write /sys/kernel/kexec_crash_size 1 1
    # All ones: kernels that round up before comparing wrap it to 0 and accept it.
    try_write /sys/kernel/kexec_crash_size 0xffffffffffffffff 1
    try_write /sys/kernel/kexec_crash_size 0x0 1
    ro_write_probes
    end
    copy_vmcore
    echo "@@DONE"
    poweroff -f
}

probe() {
    echo "@@PROBE-OK"
    poweroff -f
}

case "$MODE" in
    probe) probe ;;
    *) if [ -e /proc/vmcore ]; then capture; else production; fi ;;
esac
fail "init fell through"
