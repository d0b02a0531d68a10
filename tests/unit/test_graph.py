"""The task graph: edges from requires and file order, cycles, and the run order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import GraphError
from runner.load.graph import NOTIFY, ORDER, REQUIRES, TaskGraph, build_graph
from runner.load.playbook import load_playbook

pytestmark = pytest.mark.usefixtures("probe_module")

Write = Callable[..., Path]


def graph_of(write: Write, **files: str) -> TaskGraph:
    return build_graph([load_playbook(write(f"{name}.yml", text)) for name, text in files.items()])


def cycle_error(write: Write, **files: str) -> str:
    with pytest.raises(GraphError) as caught:
        graph_of(write, **files)
    return caught.value.render()


def tasks(*specs: str) -> str:
    """A one-play playbook; each spec is ``id`` or ``id<-a,b`` (requires) or ``id<-`` (none)."""
    lines = ["- hosts: all", "  tasks:"]
    for spec in specs:
        task_id, arrow, required = spec.partition("<-")
        lines += [f"    - id: {task_id}", f"      probe: {task_id}"]
        if arrow:
            lines.append(f"      requires: [{required}]")
    return "\n".join(lines) + "\n"


def test_tasks_without_requires_run_top_to_bottom(write: Write) -> None:
    graph = graph_of(write, site=tasks("c", "a", "b"))
    assert graph.order == ("site:c", "site:a", "site:b")
    assert graph.dependencies("site:a") == ["site:c"]
    assert graph.graph["site:c"]["site:a"]["kind"] == ORDER


def test_tasks_without_ids_get_generated_ids_in_file_order(write: Write) -> None:
    graph = graph_of(write, site="- hosts: all\n  tasks:\n    - probe: a\n    - probe: b\n")
    assert graph.order == ("site:tasks[1]", "site:tasks[2]")


def test_generated_ids_of_later_plays_do_not_collide(write: Write) -> None:
    text = "- hosts: all\n  tasks:\n    - probe: a\n- hosts: all\n  tasks:\n    - probe: b\n"
    graph = graph_of(write, site=text)
    assert graph.order == ("site:tasks[1]", "site:play2.tasks[1]")
    assert [graph.nodes[n].task.args["msg"] for n in graph.order] == ["a", "b"]


def test_empty_requires_makes_a_task_independent(write: Write) -> None:
    graph = graph_of(write, site=tasks("a", "b<-", "c"))
    assert graph.dependencies("site:b") == []
    assert graph.dependencies("site:c") == ["site:b"]
    assert graph.dependents("site:a") == set()
    assert graph.order == ("site:a", "site:b", "site:c")


def test_requires_replaces_the_implicit_edge_to_the_task_before(write: Write) -> None:
    graph = graph_of(write, site=tasks("a", "b", "c<-a"))
    assert graph.dependencies("site:c") == ["site:a"]
    assert graph.graph["site:a"]["site:c"]["kind"] == REQUIRES
    assert graph.dependents("site:b") == set()


def test_a_task_requiring_a_later_one_moves_after_it_and_others_keep_file_order(write: Write) -> None:
    graph = graph_of(write, site=tasks("a<-d", "b<-", "c<-", "d<-"))
    assert graph.order == ("site:b", "site:c", "site:d", "site:a")


def test_ties_are_broken_by_file_position(write: Write) -> None:
    graph = graph_of(write, site=tasks("z<-", "y<-", "x<-", "w<-z,y,x"))
    assert graph.order == ("site:z", "site:y", "site:x", "site:w")


def test_ties_between_playbooks_follow_the_command_line_order(write: Write) -> None:
    graph = graph_of(write, b_first=tasks("one"), a_second=tasks("two"))
    assert graph.order == ("b_first:one", "a_second:two")


def test_cross_playbook_requires_adds_an_edge_and_orders_the_plays(write: Write) -> None:
    graph = graph_of(write, first=tasks("use<-base:ready"), base=tasks("ready"))
    assert graph.dependencies("first:use") == ["base:ready"]
    assert graph.order == ("base:ready", "first:use")
    assert [book.name for book, _ in graph.plays] == ["base", "first"]


def test_dependents_are_transitive(write: Write) -> None:
    graph = graph_of(write, site=tasks("a", "b", "c<-", "d<-b"))
    assert graph.dependents("site:a") == {"site:b", "site:d"}
    assert graph.dependents("site:c") == set()


def test_requiring_a_task_inside_a_block_depends_on_the_block(write: Write) -> None:
    text = """
    - hosts: all
      tasks:
        - id: setup
          block:
            - id: inner
              probe: x
        - id: after
          probe: y
          requires: [inner]
    """
    graph = graph_of(write, site=text)
    assert graph.dependencies("site:after") == ["site:setup"]


NOTIFY_PLAY = """
- hosts: all
  tasks:
    - id: change
      probe: x
      notify: restart
    - id: other
      probe: y
      requires: []
  handlers:
    - id: handler
      name: restart
      probe: z
"""


def test_notify_edges_do_not_order_or_gate(write: Write) -> None:
    graph = graph_of(write, site=NOTIFY_PLAY)
    assert graph.graph["site:change"]["site:handler"]["kind"] == NOTIFY
    assert graph.dependencies("site:handler") == []
    assert graph.dependents("site:change") == set()
    assert graph.order == ("site:change", "site:other", "site:handler")


def test_sections_run_in_their_fixed_order(write: Write) -> None:
    text = """
    - hosts: all
      verify: [{id: v, probe: v}]
      tasks: [{id: t, probe: t}]
      diagnose: [{id: d, probe: d}]
      rollback: [{id: r, probe: r}]
    """
    graph = graph_of(write, site=text)
    assert graph.order == ("site:d", "site:t", "site:v", "site:r")
    play = graph.plays[0][1]
    assert [n.id for n in graph.section_order(play, "tasks")] == ["site:t"]


def test_requiring_a_task_of_a_later_section_is_an_error(write: Write) -> None:
    text = """
    - hosts: all
      tasks: [{id: t, probe: t, requires: [v]}]
      verify: [{id: v, probe: v}]
    """
    assert "requires 'v' of the later section 'verify'" in cycle_error(write, site=text)


# --- errors ---------------------------------------------------------------------

def test_two_task_cycle_names_both_tasks_with_their_locations(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-b", "b<-a"))
    assert "dependency cycle: site:a (" in text
    assert "site.yml:3:7) -> site:b (" in text
    assert "site.yml:6:7) -> site:a" in text


def test_three_task_cycle_shows_the_full_path(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-c", "b<-a", "c<-b"))
    first_line = text.splitlines()[0]
    for task_id, line in (("a", 3), ("b", 6), ("c", 9)):
        assert f"site:{task_id} (" in first_line
        assert f"site.yml:{line}:7" in first_line
    assert first_line.count(" -> ") == 3


def test_cycle_through_an_implicit_edge_explains_it(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-c", "b", "c"))
    assert "which has no 'requires', runs after it" in text


def test_cycle_across_playbooks_names_both_files(write: Write) -> None:
    text = cycle_error(write, one=tasks("x<-two:y"), two=tasks("y<-one:x"))
    assert "one.yml:3:7" in text
    assert "two.yml:3:7" in text


def test_self_requirement_is_an_error(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-a"))
    assert "site.yml:3:7: task 'a' requires itself" in text


def test_unknown_requires_id_suggests_the_closest(write: Write) -> None:
    text = cycle_error(write, site=tasks("first", "second<-frist"))
    assert "requires 'frist': no task with id 'frist' in playbook 'site' (did you mean 'first'?)" in text


def test_unknown_playbook_in_requires_is_an_error(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-other:b"))
    assert "requires 'other:b': no playbook named 'other' among those given" in text
    assert "pass that playbook on the command line too" in text


def test_unknown_id_in_another_playbook_is_an_error(write: Write) -> None:
    text = cycle_error(write, site=tasks("a<-base:nope"), base=tasks("ready"))
    assert "no task with id 'nope' in playbook 'base'" in text


def test_every_unknown_requires_is_reported_at_once(write: Write) -> None:
    with pytest.raises(GraphError) as caught:
        graph_of(write, site=tasks("a<-x", "b<-y"))
    assert len(caught.value.problems) == 2


def test_two_playbooks_with_one_name_are_an_error(write: Write, tmp_path: Path) -> None:
    one = load_playbook(write("a/site.yml", tasks("x")))
    two = load_playbook(write("b/site.yml", tasks("y")))
    with pytest.raises(GraphError, match="two playbooks are named 'site'"):
        build_graph([one, two])


def test_plays_requiring_each_other_are_a_play_level_cycle(write: Write) -> None:
    text = """
    - hosts: all
      tasks:
        - {id: t1, probe: a}
        - {id: t2, probe: b, requires: [b2]}
    - hosts: all
      tasks:
        - {id: b1, probe: c, requires: [t1]}
        - {id: b2, probe: d}
    """
    text_error = cycle_error(write, site=text)
    assert "site.yml:1:3: plays require tasks of each other: site play 1 (" in text_error
    assert "site.yml:1:3) -> site play 2 (" in text_error
    assert "'b1' (" in text_error and "requires 't1'" in text_error
    assert "'t2' (" in text_error and "requires 'b2'" in text_error


def test_graph_of_no_playbooks_is_empty() -> None:
    graph = build_graph([])
    assert graph.order == ()
    assert graph.plays == ()
