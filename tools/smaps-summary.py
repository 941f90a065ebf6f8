#!/usr/bin/python3
"""Where a process's resident memory goes, from /proc/<pid>/smaps (or a copy of it, as
`footprint-bench --agent-dump` writes): one line per file, split by what the pages are, then the
anonymous memory by kind. Figures in KiB, the Rss of /proc/<pid>/status, not PSS.

  tools/smaps-summary.py PID|SMAPS_FILE [--top N]

Per file: `code` (executable mappings: touched code plus the kernel's fault-around of pages
already cached), `rodata` (read-only and clean: ELF headers, symbol and relocation tables that
the dynamic linker reads, .rodata, .eh_frame), `relro` (read-only but privately dirty: .data.rel.ro
and the GOT, written once by relocation), `data` (.data, writable and file-backed) and `bss` (the
anonymous mapping that follows a library's last one). Anonymous memory: `[heap]` (malloc's main
arena), `malloc arenas` (the per-thread heaps: 64 MiB-aligned mappings with a PROT_NONE tail),
`thread stacks` (a mapping right after a small PROT_NONE guard), `[stack]` and the rest. Not a
measurement tool of its own: it only sorts what the kernel reports."""
import collections
import re
import sys

ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit


def read_smaps(src):
    path = f"/proc/{src}/smaps" if src.isdigit() else src
    maps, cur = [], None
    with open(path) as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
            if m:
                cur = dict(start=int(m[1], 16), end=int(m[2], 16), perm=m[3], path=m[4].strip(), f={})
                maps.append(cur)
                continue
            k, _, v = line.partition(":")
            v = v.strip()
            if v.endswith("kB"):
                cur["f"][k] = int(v.split()[0])
    return maps


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: smaps-summary.py PID|SMAPS_FILE [--top N]")
    top = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--top" else 40
    maps = read_smaps(sys.argv[1])
    files = collections.defaultdict(collections.Counter)
    anon = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    last_file = None  # (name, end) of the previous file mapping
    for i, mp in enumerate(maps):
        f, path, perm = mp["f"], mp["path"], mp["perm"]
        rss, dirty = f.get("Rss", 0), f.get("Private_Dirty", 0)
        total["rss"] += rss
        total["dirty"] += dirty
        total["anonymous"] += f.get("Anonymous", 0)
        if path.startswith("/"):
            name = path.rsplit("/", 1)[-1]
            c = files[name]
            if "x" in perm:
                c["code"] += rss
            elif perm.startswith("r-"):
                c["rodata"] += rss - dirty
                c["relro"] += dirty
            else:
                c["data"] += rss
            c["rss"] += rss
            c["dirty"] += dirty
            last_file = (name, mp["end"])
            continue
        prev = maps[i - 1] if i else None
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        if path == "" and last_file and last_file[1] == mp["start"] and "rw" in perm:
            c = files[last_file[0]]
            c["bss"] += rss
            c["rss"] += rss
            c["dirty"] += dirty
            kind = None
        elif path:
            kind = path
        elif perm.startswith("---"):
            kind = "PROT_NONE reserve"
        elif (mp["start"] % ARENA_ALIGN == 0 and nxt and nxt["perm"].startswith("---")
              and nxt["start"] == mp["end"] and nxt["end"] - mp["start"] == ARENA_ALIGN):
            kind = "malloc arenas"
        elif (prev and prev["perm"].startswith("---") and prev["end"] == mp["start"]
              and prev["end"] - prev["start"] <= 64 << 10):
            kind = "thread stacks"
        else:
            kind = "other anonymous"
        last_file = None
        if kind:
            anon[kind]["rss"] += rss
            anon[kind]["dirty"] += dirty
            anon[kind]["n"] += 1
    cols = ("rss", "code", "rodata", "relro", "data", "bss", "dirty")
    print(f"{'file':44s}" + "".join(f"{c:>8s}" for c in cols))
    for name, c in sorted(files.items(), key=lambda kv: -kv[1]["rss"])[:top]:
        print(f"{name[:44]:44s}" + "".join(f"{c[k]:8d}" for k in cols))
    s = collections.Counter()
    for c in files.values():
        s.update(c)
    print(f"{'all ' + str(len(files)) + ' files':44s}" + "".join(f"{s[k]:8d}" for k in cols))
    print()
    print(f"{'anonymous':44s}{'rss':>8s}{'dirty':>8s}{'maps':>8s}")
    for kind, c in sorted(anon.items(), key=lambda kv: -kv[1]["rss"]):
        print(f"{kind[:44]:44s}{c['rss']:8d}{c['dirty']:8d}{c['n']:8d}")
    print()
    print(f"Rss {total['rss']} KiB (file {s['rss']}, of it dirty {s['dirty']}; anonymous "
          f"{total['anonymous']}), Private_Dirty {total['dirty']}")


if __name__ == "__main__":
    main()
