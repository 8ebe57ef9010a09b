# deps.sh: sourced by the launcher and the test script. Installs missing
# Debian packages when we are root and apt-get exists; otherwise names them.
# Usage: ensure_packages PKG...
ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        echo "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
        return 1
    fi
}

WSMILL_BUILD_PACKAGES=(meson ninja-build pkg-config gcc libc6-dev libev-dev libhttp-parser-dev
    libjemalloc-dev libssl-dev libinih-dev libhiredis-dev libjansson-dev zlib1g-dev)

# Usage: build_release (from the repo root): the release build in build/,
# configured on first use, brought up to date.
build_release() {
    [ -d build ] || meson setup build >/dev/null
    ninja -C build >/dev/null
}
