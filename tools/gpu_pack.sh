#!/usr/bin/env bash
# gpu_pack.sh [DEST] — everything the GPU machine needs that the working tree lacks, in one
# folder (default .devpack, git-ignored) that fits the 64 MiB a run may carry there:
#   bin/dre.gz, bin/dre_gpu_tests.gz   sm_90 builds, stripped and gzipped (12 MiB become 4;
#                                gpu_proof.sh --pack unpacks them); the GPU tests in one binary;
#                                with DRE_PACK_MPI=1 also bin/dre-mpi.gz, for a machine with
#                                several GPUs and Open MPI (the scale stage; 2 MiB more, past
#                                the 64 with today's tree, so not by default)
#   lib/*.xz                     the shared libraries that machine may lack (libmicrohttpd,
#                                libcjson, OpenBLAS and its Fortran runtime, SQLite, libgomp),
#                                xz-compressed (OpenBLAS's 36 MB become 4); Ubuntu's base
#                                system has the rest (glibc, libstdc++, GnuTLS and its chain)
#   models/all-MiniLM-L6-v2/     the default model with float16 weights (45 MB, not 91)
# Build here, then on the GPU machine (see ../shared/device/README.md):
#   tools/gpu_proof.sh --pack .devpack OUTDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dest=${1:-.devpack}
build=${DRE_PACK_BUILD:-build}
say() { printf 'gpu_pack: %s\n' "$*" >&2; }

cmake -S . -B "$build" -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$build" -j"$(nproc)" --target dre_cli dre_mpi_cli dre_gpu_tests >/dev/null
bins="dre dre_gpu_tests"
[ "${DRE_PACK_MPI:-0}" = 1 ] && bins="$bins dre-mpi"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/bin" "$dest.tmp/lib" "$dest.tmp/models"
for b in $bins; do
  strip -o "$dest.tmp/bin/$b" "$build/$b"
  gzip -9 "$dest.tmp/bin/$b"
done
for lib in libmicrohttpd.so.12 libcjson.so.1 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 \
           libsqlite3.so.0 libgomp.so.1; do
  path=$(ldd "$build/dre" | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || { say "$build/dre does not link $lib"; exit 1; }
  xz -9 -T0 -c "$path" > "$dest.tmp/lib/$lib.xz"
done
[ -f models/all-MiniLM-L6-v2/model.safetensors ] || { say "run tools/setup.sh first"; exit 1; }
python3 tools/gpu/f16_model.py models/all-MiniLM-L6-v2 "$dest.tmp/models/all-MiniLM-L6-v2" 2>/dev/null
rm -f "$dest.tmp/models/all-MiniLM-L6-v2/README.md" "$dest.tmp/models/all-MiniLM-L6-v2/data_config.json"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
kib=$(du -sk --apparent-size "$dest" | cut -f1)
tree_kib=$(git ls-files -z | du -ck --apparent-size --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
say "$dest: $((kib / 1024)) MiB, with the working tree $(((kib + tree_kib) / 1024)) MiB of the 64 a run carries"
if [ $((kib + tree_kib)) -gt $((63 * 1024)) ]; then
  say "too big to travel: shrink the pack or the tree"
  exit 1
fi
