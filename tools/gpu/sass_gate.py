#!/usr/bin/env python3
"""sass_gate.py — checks the compiled sm_90 code of every dre kernel against what its source
says the kernel is meant to be, without a GPU: no local-memory spills anywhere, tensor-core
(HMMA) instructions where a kernel is meant to use them, 128-bit global loads and stores where
it is meant to be vectorised, registers and static shared memory within the limits its
occupancy design assumes.

The expectations sit next to each kernel in kernels/*.cu, one comment line per kernel
(a glob over the demangled name, without namespace and parameters):

    // sass-gate: attention_kernel<*> regs<=128 hmma>=8 ldg128>=1

Keys: regs (registers per thread), smem (static shared bytes, the 1 KiB sm_90 reserves
included), hmma (tensor-core instructions), ldg128 / stg128 (128-bit global loads / stores),
instructions (static SASS instructions, NOPs aside), loop (the instructions of the largest
loop that holds HMMA: for a flash-attention kernel, its key-tile loop, straight-line when
its inner loops are unrolled); each with <=, >= or =. Spills (local
memory, LDL/STL) must be zero for every kernel. A kernel without an expectation, or an
expectation that names no kernel, fails the gate too.

usage: sass_gate.py [--cuobjdump PATH] [--sources DIR]... LIBRARY_OR_BINARY...
Prints one table row per kernel and exits 1 on any violation.
"""
import argparse
import fnmatch
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

ARCH = "sm_90"
CHECK_RE = re.compile(r"^(regs|smem|hmma|ldg128|stg128|instructions|loop)(<=|>=|=)(\d+)$")
EXPECT_RE = re.compile(r"//\s*sass-gate:\s*(\S+)\s*(.*)$")
INSTR_RE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*)")


def find_cuobjdump(given):
    """cuobjdump: --cuobjdump, PATH, the CUDA toolkit, or PyPI's nvidia-cuda-cuobjdump."""
    if given:
        return given
    found = shutil.which("cuobjdump")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"):
        if root and os.access(os.path.join(root, "bin", "cuobjdump"), os.X_OK):
            return os.path.join(root, "bin", "cuobjdump")
    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations if spec else []) or []:
        for path in sorted(glob.glob(os.path.join(base, "*", "bin", "cuobjdump"))):
            if os.access(path, os.X_OK):
                return path
    sys.exit("sass_gate: cuobjdump not found: tools/setup.sh installs it "
             "(PyPI nvidia-cuda-cuobjdump), or pass --cuobjdump")


def put_nvdisasm_on_path(cuobjdump):
    """cuobjdump -sass runs nvdisasm, which it looks for on PATH: the folder of the cuobjdump
    used (third_party/cuda/bin links both) and the folder it really lives in (PyPI's
    nvidia-cuda-nvdisasm installs beside nvidia-cuda-cuobjdump) go first."""
    dirs = [os.path.dirname(os.path.abspath(cuobjdump)), os.path.dirname(os.path.realpath(cuobjdump))]
    os.environ["PATH"] = os.pathsep.join(dirs + [os.environ.get("PATH", "")])
    if not shutil.which("nvdisasm"):
        sys.exit("sass_gate: nvdisasm (which cuobjdump -sass runs) not found: tools/setup.sh "
                 "installs it (PyPI nvidia-cuda-nvdisasm)")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sass_gate: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def demangle(names):
    out = run(["c++filt"] + names) if names else ""
    return dict(zip(names, out.splitlines()))


def short_name(demangled):
    """'void (anonymous namespace)::attention_kernel<64>(__half const*, ...)' ->
    'attention_kernel<64>'"""
    name = demangled
    if name.startswith("void "):
        name = name[5:]
    depth = 0
    for i, ch in enumerate(name):  # cut the parameter list (the first '(' outside <...>)
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and not name.startswith("(anonymous", i):
            name = name[:i]
            break
    return name.split("::")[-1]


def kernels_of(cuobjdump, paths):
    """{mangled name: stats} from cuobjdump's resource usage and SASS of the sm_90 code."""
    stats = {}
    # cuobjdump reads one file a call
    usage = "\n".join(run([cuobjdump, "-res-usage", "-arch", ARCH, p]) for p in paths)
    current = None
    for line in usage.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            current = m.group(1)
            continue
        if current and "REG:" in line:
            fields = dict(re.findall(r"(\w+):(\d+)", line))
            stats[current] = {
                "regs": int(fields.get("REG", 0)), "stack": int(fields.get("STACK", 0)),
                "smem": int(fields.get("SHARED", 0)), "local": int(fields.get("LOCAL", 0)),
                "hmma": 0, "ldg128": 0, "stg128": 0, "spill_ops": 0, "instructions": 0,
                "loop": 0, "code": []}
            current = None
    sass = "\n".join(run([cuobjdump, "-sass", "-arch", ARCH, p]) for p in paths)
    current = None
    for line in sass.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            current = stats.setdefault(m.group(1), None)
            if current is None:
                sys.exit(f"sass_gate: {m.group(1)} has SASS but no resource usage")
            continue
        m = INSTR_RE.search(line)
        if not m or current is None:
            continue
        op = m.group(2)
        if op == "NOP":
            continue
        current["code"].append((int(m.group(1), 16), op, m.group(3)))
        current["instructions"] += 1
        if op.startswith("HMMA"):
            current["hmma"] += 1
        elif op.startswith("LDG") and op.endswith(".128"):
            current["ldg128"] += 1
        elif op.startswith("STG") and op.endswith(".128"):
            current["stg128"] += 1
        elif op.startswith("LDL") or op.startswith("STL"):
            current["spill_ops"] += 1
    for s in stats.values():
        s["loop"] = largest_hmma_loop(s.pop("code"))
    return stats


def largest_hmma_loop(code):
    """Instructions of the largest loop (a backward branch's range) holding an HMMA."""
    best = 0
    for addr, op, rest in code:
        m = re.search(r"(0x[0-9a-f]+)", rest) if op.startswith("BRA") else None
        if not m or int(m.group(1), 16) >= addr:
            continue
        body = [o for a, o, _ in code if int(m.group(1), 16) <= a <= addr]
        if any(o.startswith("HMMA") for o in body):
            best = max(best, len(body))
    return best


def expectations(source_dir):
    """[(glob, [(key, op, value)], 'file:line')] from the sass-gate comments."""
    found = []
    for path in sorted(glob.glob(os.path.join(source_dir, "*.cu"))):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                m = EXPECT_RE.search(line)
                if not m:
                    continue
                where = f"{os.path.relpath(path)}:{n}"
                checks = []
                for token in m.group(2).split():
                    c = CHECK_RE.match(token)
                    if not c:
                        sys.exit(f"sass_gate: {where}: cannot read '{token}' "
                                 "(expected key<=N, key>=N or key=N)")
                    checks.append((c.group(1), c.group(2), int(c.group(3))))
                found.append((m.group(1), checks, where))
    return found


def holds(value, op, limit):
    return value <= limit if op == "<=" else value >= limit if op == ">=" else value == limit


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cuobjdump")
    ap.add_argument("--sources", action="append",
                    help="a folder of .cu files with the expectations (may repeat; default "
                         "kernels/)")
    ap.add_argument("binaries", nargs="+", help="libdre.a or .cu object files")
    args = ap.parse_args()

    cuobjdump = find_cuobjdump(args.cuobjdump)
    put_nvdisasm_on_path(cuobjdump)
    stats = kernels_of(cuobjdump, args.binaries)
    if not stats:
        sys.exit(f"sass_gate: no {ARCH} code in {' '.join(args.binaries)} "
                 "(build with CMAKE_CUDA_ARCHITECTURES including 90)")
    names = demangle(sorted(stats))
    sources = args.sources or [os.path.join(os.path.dirname(__file__), "..", "..", "kernels")]
    expects = [e for folder in sources for e in expectations(folder)]
    used = set()
    failures = []
    rows = []
    for mangled in sorted(stats, key=lambda m: short_name(names[m])):
        s, name = stats[mangled], short_name(names[mangled])
        problems = []
        if s["local"] or s["stack"] or s["spill_ops"]:
            problems.append(f"spills: {s['local']} B local, {s['stack']} B stack, "
                            f"{s['spill_ops']} LDL/STL")
        mine = [e for e in expects if fnmatch.fnmatchcase(name, e[0])]
        if not mine:
            problems.append("no '// sass-gate:' expectation in " +
                            ", ".join(f"{d}/*.cu" for d in sources))
        for pattern, checks, where in mine:
            used.add(where)
            for key, op, limit in checks:
                if not holds(s[key], op, limit):
                    problems.append(f"{key} {s[key]}, expected {op}{limit} ({where})")
        rows.append((name, s, "ok" if not problems else "FAIL"))
        failures += [f"{name}: {p}" for p in problems]
    for pattern, _, where in expects:
        if where not in used:
            failures.append(f"{where}: expectation '{pattern}' names no kernel")

    head = ("kernel", "regs", "smem", "spill", "hmma", "ldg128", "stg128", "instr", "loop",
            "verdict")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, s, verdict in rows:
        spill = s["local"] + s["stack"] + s["spill_ops"]
        print(f"| {name} | {s['regs']} | {s['smem']} | {spill} | {s['hmma']} | {s['ldg128']} | "
              f"{s['stg128']} | {s['instructions']} | {s['loop']} | {verdict} |")
    if failures:
        print("\nsass_gate: FAILED", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print(f"\nsass_gate: {len(rows)} kernels ({ARCH}) as their sources expect")
    return 0


if __name__ == "__main__":
    sys.exit(main())
