#!/usr/bin/env bash
# library_symbols.sh — a library owns its names: every symbol libdre.a and libdre_serve.a
# define for other objects to link against is dre_-prefixed. Allowed besides, as names no
# program can take by accident: kernels and helpers in anonymous namespaces (nvcc emits
# their host stubs as global symbols with _GLOBAL__N_<file hash> in the mangled name), and the
# weak C++ symbols every C++ object may emit (typeinfo, guard variables, template
# instantiations: mangled _Z names; the EH personality and the typeinfo of caught
# exceptions as DW.ref. references); under AddressSanitizer,
# its __odr_asan.<name> marker of each global counts as the global's own name.
#   tests/library_symbols.sh LIBRARY...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 LIBRARY..." >&2; exit 2; }
bad=$(nm -g --defined-only "$@" 2>/dev/null | awk '
  NF == 3 {
    type = $2; name = $3
    sub(/^__odr_asan\./, "", name) # AddressSanitizer marks each global with one of these
    if (name ~ /^dre_/ || name ~ /_GLOBAL__N_/) next
    if (type ~ /^[WVu]$/ && (name ~ /^_Z/ || name ~ /^DW\.ref\.(__gxx_personality_v0|_Z)/)) next
    print type " " name
  }' | sort -u)
count=$(nm -g --defined-only "$@" 2>/dev/null | awk 'NF == 3 && $3 ~ /^dre_/' | wc -l)
if [ -n "$bad" ]; then
  echo "library_symbols: names without the dre_ prefix in $*:"
  echo "$bad" | sed 's/^/  /'
  exit 1
fi
[ "$count" -gt 100 ] || { echo "library_symbols: only $count dre_ symbols: is nm reading $*?"; exit 1; }
echo "library_symbols: $count external symbols in $*, every one dre_-prefixed"
