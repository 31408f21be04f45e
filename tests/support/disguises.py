"""Copies disguised the way students disguise them: renamed variables, reordered independent
statements, changed comments and blank lines.  Each disguise takes Python source and gives valid
Python source with the same behaviour.
"""
import io
import keyword
import re
import tokenize


def rename_variables(src):
    """Every name the cell binds (assignments, for targets, parameters) renamed, as a copier does."""
    bound = set()
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    for i, t in enumerate(toks):
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        prev = toks[i - 1].string if i else ""
        if t.type == tokenize.NAME and not keyword.iskeyword(t.string) and prev != "." and (
                nxt in ("=", ",", "+=", "-=", "/=", "*=", "in") or prev == "for"):
            bound.add(t.string)
    bound -= {"self", "torch", "math"}
    mapping = {name: "mi_{}_{}".format(name.lower(), n) for n, name in enumerate(sorted(bound))}
    out = []
    for t in toks:
        prev = out[-1][1] if out else ""
        out.append((t.type, mapping.get(t.string, t.string) if t.type == tokenize.NAME and prev != "." else t.string))
    return tokenize.untokenize(out)


ASSIGN = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=[^=]")


def reorder_statements(src):
    """Swap every pair of adjacent independent assignments at the same indentation."""
    lines = src.split("\n")
    i = 0
    while i + 1 < len(lines):
        a, b = ASSIGN.match(lines[i]), ASSIGN.match(lines[i + 1])
        if a and b and a.group(1) == b.group(1):
            names_a = {n.strip() for n in a.group(2).split(",")}
            names_b = {n.strip() for n in b.group(2).split(",")}
            words_a, words_b = set(re.findall(r"\w+", lines[i])), set(re.findall(r"\w+", lines[i + 1]))
            if not (names_a & words_b) and not (names_b & words_a):
                lines[i], lines[i + 1] = lines[i + 1], lines[i]
                i += 2
                continue
        i += 1
    return "\n".join(lines)


def recomment(src):
    """Comments removed, new ones and blank lines added."""
    out = []
    for n, line in enumerate(src.split("\n")):
        code = line.split("#")[0].rstrip() if "#" in line and "'" not in line and '"' not in line else line
        if not code.strip():
            continue
        indent = code[:len(code) - len(code.lstrip())]
        if n % 3 == 0:
            out.append(indent + "# paso {} (lo hice yo)".format(n))
        out.append(code)
        if n % 4 == 1:
            out.append("")
    return "\n".join(out) + "\n"


DISGUISES = {"renombrada": rename_variables, "reordenada": reorder_statements, "comentada": recomment,
             "todo": lambda s: recomment(reorder_statements(rename_variables(s)))}
