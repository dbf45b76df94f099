"""Graph helpers for the checker: cycles in role inheritance and group nesting."""

from __future__ import annotations


def cycles(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, starting at its first node."""
    order = {name: i for i, name in enumerate(nodes)}
    found = []
    for component in _components(nodes, edges):
        start = min(component, key=order.__getitem__)
        if len(component) == 1 and start not in edges.get(start, ()):
            continue
        found.append(_path_back(start, component, edges))
    return sorted(found, key=lambda c: order[c[0]])


def _components(nodes: list[str], edges: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (long chains are fine)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _path_back(start: str, component: set[str], edges: dict[str, list[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside one component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in edges.get(node, ()):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return list(reversed(path)) + [start]
                if child in component and child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]
