"""Inventories: Ansible INI and YAML files, directories and ``host1,host2,`` lists.

Load stage: ``load_inventory`` reads every ``-i`` source, with the
``group_vars/`` and ``host_vars/`` beside it, into a frozen ``Inventory`` whose
``to_ansible_json()`` equals ``ansible-inventory --list`` and whose
``host_vars(name)`` merges variables with Ansible's precedence (lowest first):
``all`` inventory vars, other groups' inventory vars (by depth, then
``ansible_group_priority``, then name), ``group_vars/all``, other
``group_vars/`` files (same order), the host's inline vars, ``host_vars/``.
``patterns.select_hosts`` selects hosts from it.

Where Ansible warns or silently skips, this package reports every problem of
every file at once as one ``InventoryError``: unparsable lines, unknown
sections or keys, undefined groups, group cycles, bad ranges, empty files,
invalid variable names, and host names, users and ports that must not reach
ssh. A host named ``localhost``, ``127.0.0.1`` or ``::1`` that is not in the
inventory exists implicitly with ``ansible_connection: local``, as in Ansible.

The package follows that flow: ``sources`` reads each ``-i`` source and hands
its files to ``ini`` or ``yamlsource``, which add hosts and groups to the
mutable drafts of ``builder``; ``varsfiles`` reads ``group_vars/`` and
``host_vars/``; ``builder`` then freezes everything into ``model``'s
``Inventory``.
"""

from __future__ import annotations

from runner.load.inventory.model import MAGIC_VARS, Group, Host, Inventory
from runner.load.inventory.sources import load_inventory

__all__ = ["MAGIC_VARS", "Group", "Host", "Inventory", "load_inventory"]
