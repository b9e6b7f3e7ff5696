#!/usr/bin/env bash
# Install what iotbuild needs on Debian 12 (run as root): Debian tools, then a venv with the package.
#   scripts/setup.sh          tools for building
#   scripts/setup.sh --test   also the independent checkers the tests use and the test extras
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

export DEBIAN_FRONTEND=noninteractive
apt_pkgs=(python3 python3-venv python3-pip ca-certificates openssl)
# independent checkers: cabextract, gcab, osslsigncode (>= 2.8 lists and verifies catalogs: backports)
apt_pkgs+=(gcab cabextract)
# provisioning packages are WIM files: wimlib-imagex; sgdisk checks the GPTs we write
apt_pkgs+=(wimtools gdisk)
# offline registry hives are checked with hivex (hivexsh, hivexget, hivexregedit)
apt_pkgs+=(libhivex-bin libwin-hivex-perl)
# images: FAT32 with mkfs.fat + mtools, NTFS with mkntfs + wimlib (ntfs-3g also brings ntfsfix/ntfscat)
apt_pkgs+=(dosfstools mtools ntfs-3g)
# smoke test: QEMU (TCG) + OVMF; busybox-static goes into the sample board's initramfs
apt_pkgs+=(qemu-system-x86 qemu-utils ovmf busybox-static)

sudo_=""
[ "$(id -u)" -ne 0 ] && sudo_="sudo"

need_apt=0
for p in "${apt_pkgs[@]}" osslsigncode; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
ossl_ok() { command -v osslsigncode >/dev/null && dpkg --compare-versions \
    "$(dpkg-query -W -f='${Version}' osslsigncode 2>/dev/null || echo 0)" ge 2.8; }
ossl_ok || need_apt=1

if [ "$need_apt" = 1 ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            | $sudo_ tee /etc/apt/sources.list.d/iotbuild-backports.sources >/dev/null
    fi
    $sudo_ apt-get update -qq
    $sudo_ apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
    $sudo_ apt-get install -y -qq --no-install-recommends -t bookworm-backports osslsigncode >/dev/null
fi

# The sample board's boot payload (bsp/QEMUx64/Board.xml): Debian's 6.12 cloud kernel (it has ntfs3) and
# systemd-boot, fetched as .debs and only unpacked later by `invoke bsp.prepare` (installing them would run the
# kernel's postinst and upgrade systemd). Skipped when build/debs already holds them, so re-runs need no network.
# The kernel's versioned name comes from the meta-package: pinned names disappear when Debian updates.
fetch_debs() {
    local dir="$here/build/debs" kpkg tmp
    local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
    [ "$(id -u)" -eq 0 ] && apt+=(-o APT::Sandbox::User=root)
    mkdir -p "$dir"
    local want=()
    compgen -G "$dir/linux-image-6.12.*-cloud-amd64_*.deb" >/dev/null || want+=(kernel)
    compgen -G "$dir/systemd-boot-efi_*.deb" >/dev/null || want+=(systemd-boot-efi)
    [ ${#want[@]} -eq 0 ] && return 0
    kpkg=$(apt-cache depends linux-image-6.12-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-6/{print $2; exit}')
    local names=()
    for w in "${want[@]}"; do
        if [ "$w" = kernel ]; then
            [ -n "$kpkg" ] || return 1
            names+=("$kpkg")
        else
            names+=("$w")
        fi
    done
    tmp=$(mktemp -d "$dir/.download.XXXXXX")
    if (cd "$tmp" && "${apt[@]}" download "${names[@]}" >/dev/null); then
        mv "$tmp"/*.deb "$dir"/
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp"
    return 1
}
if ! fetch_debs; then
    # stale or empty package lists (a fresh machine where nothing needed installing): refresh once and retry
    $sudo_ apt-get update -qq
    if ! fetch_debs; then
        echo "setup: cannot download linux-image-6.12-cloud-amd64's kernel and systemd-boot-efi into build/debs" >&2
        echo "setup: they come from bookworm-security / bookworm: check /etc/apt/sources.list*" >&2
        exit 1
    fi
fi

cd "$here"
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
extras=""
[ "$want_tests" = 1 ] && extras="[test]"
pip_log=$(mktemp)
if ! .venv/bin/pip install -q --disable-pip-version-check -e ".${extras}" >"$pip_log" 2>&1; then
    cat "$pip_log" >&2
    echo "setup: pip install failed" >&2
    exit 1
fi
rm -f "$pip_log"
.venv/bin/python -c "import iotbuild.tasks, lxml, cryptography, asn1crypto, pycdlib, jinja2, rich"
echo "setup: ok ($(.venv/bin/python --version), osslsigncode $(osslsigncode --version 2>&1 | head -1 | awk '{print $2}'))"
