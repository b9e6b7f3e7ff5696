#!/bin/sh
# /init of the iotbuild smoke-test initramfs (busybox sh). It verifies the image it booted from and prints ONE
# verdict line on the console, then powers off:
#   <SMOKE_OK> <n> files verified
#   <SMOKE_FAIL> <reason>: <first mismatching or missing paths>
# Settings (markers, manifest location, waits) come from /etc/iotbuild-smoke.conf, which `invoke bsp.prepare`
# writes from the board's Board.xml; /etc/modules.list names the modules to load, in order.
# The manifest is in sha256sum format, one line per file of every partition: "<sha256>  <Partition>/<path>".

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /dev /proc /sys /mnt /tmp
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

SMOKE_OK=IOTBUILD-SMOKE-OK
SMOKE_FAIL=IOTBUILD-SMOKE-FAIL
SMOKE_WAIT=10
SMOKE_MANIFEST=MainOS/Windows/ImageUpdate/ImageManifest.sha256
SMOKE_PROVISIONING=MainOS/Windows/Provisioning/Packages
[ -r /etc/iotbuild-smoke.conf ] && . /etc/iotbuild-smoke.conf

halt_now() {
    sync
    poweroff -f
    sleep 5
    exit 1  # init exiting panics the kernel; with panic=-1 and QEMU's -no-reboot, QEMU exits
}

# One verdict line, after kernel messages are quietened so that none is printed into the middle of it.
verdict() {
    echo 1 >/proc/sys/kernel/printk 2>/dev/null
    echo "$*"
    halt_now
}

fail() {
    verdict "$SMOKE_FAIL $*"
}

# The /dev node of the partition whose GPT name is $1 (PARTNAME= in the uevent file), or nothing.
find_part() {
    for u in /sys/class/block/*/uevent; do
        [ -r "$u" ] || continue
        pname=""
        dname=""
        while IFS='=' read -r key value; do
            case "$key" in
                PARTNAME) pname="$value" ;;
                DEVNAME) dname="$value" ;;
            esac
        done <"$u"
        if [ "$pname" = "$1" ] && [ -n "$dname" ]; then
            echo "/dev/$dname"
            return 0
        fi
    done
    return 1
}

# Waits up to SMOKE_WAIT seconds for partition $1; sets PART_DEV.
wait_part() {
    tries=$((SMOKE_WAIT * 10))
    while :; do
        PART_DEV=$(find_part "$1") && [ -b "$PART_DEV" ] && return 0
        tries=$((tries - 1))
        [ "$tries" -le 0 ] && return 1
        sleep 0.1
    done
}

# Mounts partition $1 read-only at /mnt/$1: NTFS (ntfs3) or FAT (vfat), told apart by the boot sector.
mount_part() {
    wait_part "$1" || fail "partition $1 not found: no GPT partition named $1 (have:$(
        for u in /sys/class/block/*/uevent; do sed -n 's/^PARTNAME=/ /p' "$u"; done | tr -d '\n'))"
    mkdir -p "/mnt/$1"
    if [ "$(dd if="$PART_DEV" bs=1 skip=3 count=4 2>/dev/null)" = "NTFS" ]; then
        fstype=ntfs3
    else
        fstype=vfat
    fi
    mount -t "$fstype" -o ro "$PART_DEV" "/mnt/$1" || fail "cannot mount partition $1 ($PART_DEV, $fstype)"
}

# Up to 10 lines of $1 (a file), joined with ", ".
first_paths() {
    head -n 10 "$1" | awk 'NR > 1 { printf ", " } { printf "%s", $0 }'
}

if [ -r /etc/modules.list ]; then
    while read -r mod; do
        [ -n "$mod" ] || continue
        insmod "/lib/modules/$mod" || fail "kernel module $mod did not load"
    done </etc/modules.list
fi

manifest_part=${SMOKE_MANIFEST%%/*}
mount_part "$manifest_part"
manifest="/mnt/$SMOKE_MANIFEST"
[ -f "$manifest" ] || fail "manifest missing: $SMOKE_MANIFEST"

# Well-formed lines only: 64 lowercase hex digits, two spaces, <Partition>/<path>.
awk '!/^[0-9a-f]{64}  [A-Za-z0-9_.-]+\/./ { print NR }' "$manifest" >/tmp/bad-lines
if [ -s /tmp/bad-lines ]; then
    fail "manifest malformed: line(s) $(first_paths /tmp/bad-lines) of $SMOKE_MANIFEST"
fi
total=$(awk 'END { print NR }' "$manifest")
[ "$total" -gt 0 ] || fail "manifest empty: $SMOKE_MANIFEST"

for part in $(sed 's/^[0-9a-f]*  \([^/]*\)\/.*/\1/' "$manifest" | sort -u); do
    [ "$part" = "$manifest_part" ] || mount_part "$part"
done

cd /mnt || fail "no /mnt"
sha256sum -c "$manifest" 2>/dev/null | sed -n 's/: FAILED.*$//p' >/tmp/failed
if [ -s /tmp/failed ]; then
    : >/tmp/missing
    : >/tmp/changed
    while read -r path; do
        if [ -e "$path" ]; then echo "$path" >>/tmp/changed; else echo "$path" >>/tmp/missing; fi
    done </tmp/failed
    bad=$(awk 'END { print NR }' /tmp/failed)
    if [ -s /tmp/changed ] && [ -s /tmp/missing ]; then
        reason="sha256 mismatch or missing"
    elif [ -s /tmp/changed ]; then
        reason="sha256 mismatch"
    else
        reason="missing files"
    fi
    fail "$reason ($bad of $total files): $(first_paths /tmp/failed)"
fi

# Provisioning packages: only under the provisioning folder, and WIM files (magic "MSWIM\0\0\0").
: >/tmp/ppkg-bad
sed -n 's/^[0-9a-f]*  //p' "$manifest" | grep -i '\.ppkg$' | while read -r path; do
    case "$path" in
        "$SMOKE_PROVISIONING"/*) ;;
        *) echo "$path (not under $SMOKE_PROVISIONING)" >>/tmp/ppkg-bad; continue ;;
    esac
    magic=$(dd if="$path" bs=8 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "$magic" = "4d5357494d000000" ] || echo "$path (not a WIM)" >>/tmp/ppkg-bad
done
if [ -s /tmp/ppkg-bad ]; then
    fail "provisioning package check failed: $(first_paths /tmp/ppkg-bad)"
fi

verdict "$SMOKE_OK $total files verified"
