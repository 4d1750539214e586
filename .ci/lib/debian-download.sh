# Sourced by .ci/setup.d steps: `debian_download PKG` fetches PKG's .deb from Debian trixie through a
# private apt configuration under .venv/apt (the system's apt state is never touched) and prints the
# path of the downloaded file. The package lists are fetched once and kept.
debian_download() {
  local pkg=$1 apt_root=$PWD/.venv/apt
  mkdir -p "$apt_root/etc/sources.list.d" "$apt_root/etc/preferences.d" "$apt_root/state/lists/partial" \
    "$apt_root/cache/archives/partial" "$apt_root/download"
  cat > "$apt_root/etc/sources.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
LIST
  local opts=(-o "Dir::Etc::sourcelist=$apt_root/etc/sources.list"
              -o "Dir::Etc::sourceparts=$apt_root/etc/sources.list.d"
              -o "Dir::Etc::preferencesparts=$apt_root/etc/preferences.d" -o "Dir::State=$apt_root/state"
              -o "Dir::Cache=$apt_root/cache" -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1"
              -o "APT::Sandbox::User=root")
  if ! ls "$apt_root"/state/lists/*_Packages >/dev/null 2>&1; then
    apt-get -qq "${opts[@]}" update >&2
  fi
  (cd "$apt_root/download" && rm -f "${pkg}"_*.deb && apt-get -qq "${opts[@]}" download "$pkg" >&2)
  ls "$apt_root"/download/"${pkg}"_*.deb
}
