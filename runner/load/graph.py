"""The task graph: one networkx DiGraph over every task of every playbook.

Load stage. Nodes are ``"playbook:task_id"``; an edge ``a -> b`` means b
runs after a and is skipped if a fails. Edges come from ``requires`` (also
``other_playbook:id``) and, for a task without ``requires``, from the task
before it in its list (so a file without ``requires`` runs top to bottom).
Handlers get ``notify`` edges, which order nothing. The order is
topological, file position breaking ties.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from runner.errors import GraphError, Location, ProblemCollector, suggest
from runner.load.playbook import walk_tasks
from runner.model import SECTIONS, Play, Playbook, Task

ORDER = "order"
REQUIRES = "requires"
NOTIFY = "notify"


@dataclass(frozen=True)
class Node:
    """A task's place in the graph."""

    id: str
    playbook: Playbook
    play: Play
    section: str
    task: Task
    position: tuple[int, int, int, int]  # playbook, play, section, index: the tie-breaker


@dataclass(frozen=True)
class TaskGraph:
    """The dependency graph and the run order derived from it."""

    graph: nx.DiGraph[str]
    nodes: dict[str, Node]
    order: tuple[str, ...]
    plays: tuple[tuple[Playbook, Play], ...]  # in run order
    sections: dict[tuple[int, int, int], tuple[str, ...]]  # (playbook, play, section) -> order
    play_keys: dict[int, tuple[int, int]]  # id(play) -> (playbook, play) index
    undoes: dict[str, tuple[str, ...]]  # rollback task -> the fix tasks it undoes

    def dependencies(self, node_id: str) -> list[str]:
        """Direct predecessors that gate ``node_id`` (not notify edges)."""
        return [u for u, attrs in self.graph.pred[node_id].items() if attrs["kind"] != NOTIFY]

    def dependents(self, node_id: str) -> set[str]:
        """Every task that transitively depends on ``node_id``."""
        gating = nx.subgraph_view(self.graph, filter_edge=lambda u, v: self.graph[u][v]["kind"] != NOTIFY)
        return set(nx.descendants(gating, node_id))

    def section_order(self, play: Play, section: str) -> list[Node]:
        """The nodes of one section of one play, in run order."""
        key = (*self.play_keys[id(play)], SECTIONS.index(section))
        return [self.nodes[n] for n in self.sections.get(key, ())]


def build_graph(playbooks: Sequence[Playbook]) -> TaskGraph:
    """Build and check the graph of ``playbooks`` (given order = tie-break order).

    Raises:
        GraphError: cycle, unknown id, duplicate playbook name, self-dependency,
            or a dependency on a later section of the same play.
    """
    problems = ProblemCollector()
    names: dict[str, Playbook] = {}
    for book in playbooks:
        if book.name in names:
            problems.add(
                Location(book.path),
                f"two playbooks are named '{book.name}' ({names[book.name].path} and {book.path})",
                "rename one; task ids are qualified by the file name",
            )
        names[book.name] = book
    problems.raise_if_any(GraphError)
    graph: nx.DiGraph[str] = nx.DiGraph()
    nodes: dict[str, Node] = {}
    aliases: dict[str, dict[str, str]] = {}
    for b_index, book in enumerate(playbooks):
        aliases[book.name] = {}
        for play in book.plays:
            _add_play(graph, nodes, aliases[book.name], book, b_index, play)
    undoes = _add_edges(graph, nodes, aliases, problems)
    problems.raise_if_any(GraphError)
    _check_cycles(graph, nodes)
    plays = _play_order(playbooks, nodes, graph)
    groups: dict[tuple[int, int, int], list[str]] = {}
    for node in nodes.values():
        groups.setdefault(node.position[:3], []).append(node.id)
    gating = nx.subgraph_view(graph, filter_edge=lambda u, v: graph[u][v]["kind"] != NOTIFY)
    sections: dict[tuple[int, int, int], tuple[str, ...]] = {}
    order: list[str] = []
    for key in sorted(groups, key=lambda k: (plays.index(k[:2]), k[2])):
        sub = gating.subgraph(groups[key])
        sections[key] = tuple(nx.lexicographical_topological_sort(sub, key=lambda n: nodes[n].position))
        order.extend(sections[key])
    return TaskGraph(
        graph=graph,
        nodes=nodes,
        order=tuple(order),
        plays=tuple(keys_to_plays(playbooks, plays)),
        sections=sections,
        play_keys={id(playbooks[b].plays[p]): (b, p) for b, p in plays},
        undoes=undoes,
    )


def keys_to_plays(playbooks: Sequence[Playbook], keys: list[tuple[int, int]]) -> list[tuple[Playbook, Play]]:
    return [(playbooks[b], playbooks[b].plays[p]) for b, p in keys]


def _add_play(
    graph: nx.DiGraph[str],
    nodes: dict[str, Node],
    aliases: dict[str, str],
    book: Playbook,
    b_index: int,
    play: Play,
) -> None:
    for s_index, section in enumerate(SECTIONS):
        for t_index, task in enumerate(play.section(section)):
            node_id = f"{book.name}:{task.id}"
            nodes[node_id] = Node(node_id, book, play, section, task, (b_index, play.index, s_index, t_index))
            graph.add_node(node_id)
            aliases[task.id] = node_id
            for child in walk_tasks(task.block + task.rescue + task.always):
                aliases.setdefault(child.id, node_id)


def _add_edges(
    graph: nx.DiGraph[str],
    nodes: dict[str, Node],
    aliases: dict[str, dict[str, str]],
    problems: ProblemCollector,
) -> dict[str, tuple[str, ...]]:
    """Add the gating and notify edges; returns the resolved ``undoes`` of rollback tasks."""
    previous: dict[tuple[int, int, int], str] = {}
    undoes: dict[str, tuple[str, ...]] = {}
    for node_id, node in nodes.items():
        key = node.position[:3]
        if node.task.requires is None:
            if key in previous and node.section != "handlers":
                graph.add_edge(previous[key], node_id, kind=ORDER)
        else:
            for ref in node.task.requires:
                target = _resolve(ref, node, aliases, problems)
                if target is not None:
                    _add_requires(graph, nodes, target, node, problems)
        previous[key] = node_id
        if node.task.blocked_by and node.section != "diagnose":
            problems.add(node.task.location, f"'blocked_by' is only valid on a diagnose task, not in "
                         f"'{node.section}'", "move the check under 'diagnose:', or remove 'blocked_by'")
        if node.task.undoes:
            undoes[node_id] = _undone(node, aliases, nodes, problems)
        for task in walk_tasks((node.task,)):
            for topic in task.notify:
                for handler in node.play.handlers:
                    if topic == handler.name or topic in handler.listen:
                        graph.add_edge(node_id, f"{node.playbook.name}:{handler.id}", kind=NOTIFY)
    return undoes


def _undone(
    node: Node, aliases: dict[str, dict[str, str]], nodes: dict[str, Node], problems: ProblemCollector
) -> tuple[str, ...]:
    """The graph ids a rollback task ``undoes``: fix tasks (``tasks``, ``handlers``) of its play."""
    if not node.task.undoes:
        return ()
    if node.section != "rollback":
        problems.add(node.task.location, f"'undoes' is only valid on a rollback task, not in "
                     f"'{node.section}'", "move the task under 'rollback:', or remove 'undoes'")
        return ()
    found = []
    for ref in node.task.undoes:
        target = aliases[node.playbook.name].get(ref)
        if target is None or nodes[target].play is not node.play or \
                nodes[target].section not in ("tasks", "handlers"):
            known = [t for t, n in aliases[node.playbook.name].items()
                     if nodes[n].play is node.play and nodes[n].section in ("tasks", "handlers")]
            problems.add(node.task.location,
                         f"undoes '{ref}': no task with id '{ref}' among the play's tasks and handlers"
                         + suggest(ref, [k for k in known if "[" not in k]),
                         "name the fix task this rollback task undoes by its 'id:'")
        else:
            found.append(target)
    return tuple(found)


def _add_requires(
    graph: nx.DiGraph[str], nodes: dict[str, Node], target: str, node: Node, problems: ProblemCollector
) -> None:
    if target == node.id:
        problems.add(
            node.task.location, f"task '{node.task.id}' requires itself", "remove it from its own 'requires'"
        )
        return
    other = nodes[target]
    if other.play is node.play and other.position[2] > node.position[2]:
        problems.add(
            node.task.location,
            f"'{node.section}' task '{node.task.id}' requires '{other.task.id}' of the "
            f"later section '{other.section}'",
            f"sections run in the order {', '.join(SECTIONS)}",
        )
        return
    graph.add_edge(target, node.id, kind=REQUIRES)


def _resolve(
    ref: str, node: Node, aliases: dict[str, dict[str, str]], problems: ProblemCollector
) -> str | None:
    book_name, _, task_id = ref.rpartition(":")
    book_name = book_name or node.playbook.name
    if book_name not in aliases:
        problems.add(
            node.task.location,
            f"requires '{ref}': no playbook named '{book_name}' "
            "among those given" + suggest(book_name, aliases),
            "pass that playbook on the command line too",
        )
        return None
    known = aliases[book_name]
    if task_id not in known:
        problems.add(
            node.task.location,
            f"requires '{ref}': no task with id '{task_id}' in "
            f"playbook '{book_name}'" + suggest(task_id, [k for k in known if "[" not in k]),
            "check the spelling, or give the required task an 'id:'",
        )
        return None
    return known[task_id]


def _check_cycles(graph: nx.DiGraph[str], nodes: dict[str, Node]) -> None:
    gating = nx.subgraph_view(graph, filter_edge=lambda u, v: graph[u][v]["kind"] != NOTIFY)
    try:
        cycle = nx.find_cycle(gating)
    except nx.NetworkXNoCycle:
        return
    steps = []
    for source, target in cycle:
        node = nodes[source]
        why = (
            ""
            if graph[source][target]["kind"] == REQUIRES
            else f" (then '{nodes[target].task.id}', which has no 'requires', runs after it)"
        )
        steps.append(f"{source} ({node.task.location}){why}")
    steps.append(cycle[0][0])
    first = nodes[cycle[0][0]].task.location
    raise GraphError.at(
        first,
        "dependency cycle: " + " -> ".join(steps),
        "remove one of these 'requires' (a task without 'requires' depends on the task before it)",
    )


def _play_order(
    playbooks: Sequence[Playbook], nodes: dict[str, Node], graph: nx.DiGraph[str]
) -> list[tuple[int, int]]:
    plays: nx.DiGraph[tuple[int, int]] = nx.DiGraph()
    keys: dict[tuple[int, int], tuple[Playbook, Play]] = {}
    for b_index, book in enumerate(playbooks):
        for play in book.plays:
            keys[(b_index, play.index)] = (book, play)
            plays.add_node((b_index, play.index))
    for source, target, attrs in graph.edges(data=True):
        a, b = nodes[source].position[:2], nodes[target].position[:2]
        if attrs["kind"] == REQUIRES and a != b and not plays.has_edge(a, b):
            plays.add_edge(a, b, why=(source, target))
    _add_fault_order(playbooks, plays)
    try:
        order = list(nx.lexicographical_topological_sort(plays))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(plays)

        def shown(key: tuple[int, int]) -> str:
            book, item = keys[key]
            return f"{book.name} play {key[1] + 1} ({item.location})"

        steps = [shown(a) for a, _ in cycle] + [f"{keys[cycle[0][0]][0].name} play {cycle[0][0][1] + 1}"]
        reasons = []
        for a, b in cycle:
            source, target = plays[a][b]["why"]
            if source in ("after", "blocked_by"):
                reasons.append(f"{keys[b][0].name} play {b[1] + 1} ({keys[b][1].location}) has "
                               f"{source} {target}")
            else:
                reasons.append(f"'{nodes[target].task.id}' ({nodes[target].task.location}) "
                               f"requires '{nodes[source].task.id}'")
        raise GraphError.at(
            keys[cycle[0][0]][1].location,
            f"plays require tasks of each other: {' -> '.join(steps)}; because {'; '.join(reasons)}",
            "move the tasks into one play, or make the dependencies one-way "
            "('after' and 'blocked_by' order whole playbooks)",
        ) from None
    return order


def fault_order_names(play: Play) -> list[tuple[str, str]]:
    """The playbooks ``play``'s fault is fixed after: ``(keyword, playbook)`` pairs."""
    named = [("after", name) for name in play.after]
    named += [("blocked_by", task.blocked_by) for task in walk_tasks(play.diagnose) if task.blocked_by]
    return named


def _add_fault_order(playbooks: Sequence[Playbook], plays: nx.DiGraph[tuple[int, int]]) -> None:
    """Edges from every play of a playbook named by ``after``/``blocked_by`` to the naming play.

    A name that is not among the run's playbooks orders nothing.
    """
    index = {book.name: b for b, book in enumerate(playbooks)}
    for b_index, book in enumerate(playbooks):
        for play in book.plays:
            for keyword, name in fault_order_names(play):
                other = index.get(name)
                if other is None or other == b_index:
                    continue
                for before in playbooks[other].plays:
                    edge = ((other, before.index), (b_index, play.index))
                    if not plays.has_edge(*edge):
                        plays.add_edge(*edge, why=(keyword, name))
