#!/usr/bin/python3
"""check-layout.py BUILD_DIR: the tree's shape, checked.

1. README.md's layout table names every source folder, and every folder it
   names exists (so the table cannot go stale).
2. No call circle spans more than one room: from the object files' symbol
   tables (nm), which file calls which; every strongly connected group of
   files must sit in one folder (a room: worker/conn, worker/pubsub, ...).
3. No source file in master/, worker/ or common/ is over 500 lines.
4. The median function there is at most 15 lines long.
Exit status 1 with a message naming what is wrong."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOMS = ("master", "worker", "common")
MAX_LINES = 500
MAX_MEDIAN_FUNCTION = 15


def source_dirs():
    """Folders holding tracked files: worker/'s rooms one by one, the other
    top-level folders as a whole, tests/ by kind."""
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    dirs = set()
    for f in out.split():
        parts = f.split("/")
        if len(parts) < 2 or parts[0].startswith("."):
            continue
        if parts[0] == "worker":
            dirs.add("/".join(parts[:-1]) + "/")
        elif parts[0] == "tests" and len(parts) >= 3:
            dirs.add("tests/" + parts[1] + "/")
        else:
            dirs.add(parts[0] + "/")
    return dirs


def readme_dirs():
    text = open(os.path.join(ROOT, "README.md")).read()
    sec = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+/)` \|", sec, re.M))


def check_readme():
    have, named = source_dirs(), readme_dirs()
    errs = [f"README.md's layout table has no row for {d}" for d in sorted(have - named)]
    errs += [f"README.md's layout table names {d}, which holds no tracked file" for d in sorted(named - have)]
    return errs


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBR":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            undefined.add(f[1])
    return defined, undefined


LIBS = {"libwsmill_worker.a.p": "worker", "libwsmill_common.a.p": "common", "wsmill.p": ""}


def room_of(lib_room, objname):
    """(room, file) of an object: meson names worker/conn/output.c's object
    conn_output.c.o inside the worker library, master/spawn.c's
    master_spawn.c.o inside the executable's."""
    if not lib_room:  # the executable: master/...
        lib_room, objname = objname.split("_", 1)
    for sub in ("conn", "pubsub", "http", "transport"):
        if lib_room == "worker" and objname.startswith(sub + "_"):
            return f"worker/{sub}", f"worker/{sub}/{objname[len(sub) + 1:]}.c"
    return lib_room, f"{lib_room}/{objname}.c"


def check_circles(build):
    objs = {}
    for dirpath, _, files in os.walk(build):
        lib = os.path.basename(dirpath)
        if lib not in LIBS:
            continue
        for f in files:
            if f.endswith(".c.o"):
                objs[os.path.join(dirpath, f)] = room_of(LIBS[lib], f[:-4])
    owner, calls = {}, {}
    for obj, (room, name) in objs.items():
        d, u = symbols(obj)
        calls[name] = u
        for s in d:
            owner[s] = name
    rooms = {name: room for room, name in objs.values()}
    graph = {n: {owner[s] for s in u if s in owner and owner[s] != n} for n, u in calls.items()}
    # Tarjan's strongly connected components.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    errs = []
    for comp in comps:
        spanned = {rooms[n] for n in comp}
        if len(spanned) > 1:
            errs.append("a call circle spans rooms " + ", ".join(sorted(spanned)) + ": " + ", ".join(sorted(comp)))
    return errs, len(objs)


def check_lengths():
    errs = []
    for room in ROOMS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, room)):
            for f in files:
                if f.endswith((".c", ".h")):
                    p = os.path.join(dirpath, f)
                    n = sum(1 for _ in open(p))
                    if n > MAX_LINES:
                        errs.append(f"{os.path.relpath(p, ROOT)} has {n} lines (at most {MAX_LINES})")
    return errs


def function_lengths():
    """Body lengths of the C functions in the three rooms: a definition is
    a line that closes its parameter list, then "{" and "}" at column 0."""
    lens = []
    for room in ROOMS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, room)):
            for f in files:
                if not f.endswith(".c"):
                    continue
                lines = open(os.path.join(dirpath, f)).read().split("\n")
                start = None
                for i, line in enumerate(lines):
                    if line == "{" and i and lines[i - 1].rstrip().endswith(")"):
                        start = i
                    elif line == "}" and start is not None:
                        lens.append(i - start - 1)
                        start = None
    return sorted(lens)


def check_functions():
    lens = function_lengths()
    median = lens[len(lens) // 2] if lens else 0
    if median > MAX_MEDIAN_FUNCTION:
        return [f"the median function is {median} lines (at most {MAX_MEDIAN_FUNCTION})"]
    return []


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    errs = check_readme()
    circ, nobj = check_circles(build)
    if nobj == 0:
        errs.append(f"no object files under {build}: build first")
    errs += circ + check_lengths() + check_functions()
    for e in errs:
        print("check-layout: " + e, file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
