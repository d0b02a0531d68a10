"""Load: input files -> a validated model, or one ``InputError`` listing every problem (exit 4).

Takes playbook files, inventory sources and ``-e`` variables; gives ``Inputs``
(``inputs.load_inputs``): the ``Playbook`` model, the task ``TaskGraph``
(networkx; cycles and unknown ids are input errors), the ``Inventory`` and
the extra variables. Nothing here contacts a host.

The flow inside: ``yamlfile`` reads YAML strictly into the position-marked
containers of ``marked``; ``playbook`` and ``taskread`` check plays and tasks
(``argcheck`` checks module arguments, ``localfiles`` finds the files
``copy`` and ``template`` read, ``templating`` checks and renders Jinja2 in a
sandbox); ``inventory/`` reads inventories and selects hosts by
pattern; ``graph`` orders the tasks; ``extravars`` checks ``-e`` against the
variables the playbooks declare; ``inputs`` ties it together.

May import: the data modules (``errors``, ``model``, ``results``, ``events``,
``imports``), ``redaction``, ``connection`` and ``modules``.
"""
