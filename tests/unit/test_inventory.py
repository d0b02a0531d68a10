"""Inventory loading: the model, variables, implicit localhost, and every error with file, line and hint.

Parity with ansible-inventory on valid inventories is in test_inventory_parity.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import InputError, InventoryError, Problem
from runner.load.argcheck import check_value
from runner.load.inventory import Inventory, load_inventory
from runner.load.marked import OctalInt
from runner.modules.base import Arg

CORPUS = Path(__file__).parent / "inventory_corpus"
EXAMPLES = Path(__file__).parents[2] / "inventory"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems_of(*sources: str | Path) -> list[Problem]:
    with pytest.raises(InventoryError) as error:
        load_inventory(list(sources))
    return error.value.problems


def only_problem(*sources: str | Path) -> Problem:
    problems = problems_of(*sources)
    assert len(problems) == 1, [p.message for p in problems]
    return problems[0]


# --- the model ------------------------------------------------------------------------


def test_hosts_and_groups_keep_file_order_and_group_membership() -> None:
    inventory = load_inventory([CORPUS / "ini_children"])
    assert list(inventory.hosts) == ["par1", "par2", "ber1", "nyc1"]
    assert inventory.groups["site"].children == ("europe", "america")
    assert inventory.groups["nyc"].hosts == ("nyc1", "par1")
    assert inventory.hosts["par1"].groups == ("all", "site", "america", "europe", "nyc", "paris")


def test_host_vars_follow_ansibles_precedence_across_files_and_groups() -> None:
    inventory = load_inventory([CORPUS / "ini_group_vars_dirs" / "hosts.ini"])
    web1 = inventory.host_vars("web1")
    assert web1["env"] == "group_vars_all"  # group_vars/all beats [web:vars] in the file
    assert web1["tier"] == "host_vars_web1"  # host_vars/ beats the inline var
    assert web1["http_port"] == 8081  # group_vars/web/ files merge in name order
    assert inventory.host_vars("db1")["tier"] == "group_vars_db"


def test_group_vars_of_a_deeper_group_win_and_priority_breaks_ties() -> None:
    inventory = load_inventory([CORPUS / "ini_group_priority"])
    assert inventory.host_vars("h1")["color"] == "alpha"  # priority 10 beats zeta's 1
    assert inventory.host_vars("h2")["color"] == "zeta"  # beta has priority 0
    assert inventory.groups["alpha"].priority == 10
    assert "ansible_group_priority" not in inventory.groups["alpha"].vars


def test_ini_values_are_typed_like_ansible() -> None:
    inventory = load_inventory([CORPUS / "ini_typing_inline"])
    t1 = inventory.host_vars("t1")
    assert t1 == {
        "int": 1,
        "yes": "yes",
        "quoted": 1,
        "float": 1.0,
        "list": [1, 2],
        "bool": True,
        "lower": "true",
        "a_none": None,
    }
    group = load_inventory([CORPUS / "ini_typing_groupvars"]).host_vars("app1")
    assert (group["port"], group["quoted"], group["comment"], group["hash"]) == (
        80,
        "1",
        "a",
        "a # part of the value",
    )


def test_connection_variables_come_through_with_their_types() -> None:
    inventory = load_inventory([CORPUS / "connection_vars"])
    t1, t3 = inventory.host_vars("t1"), inventory.host_vars("t3")
    assert (t1["ansible_host"], t1["ansible_port"], t1["ansible_user"]) == ("192.0.2.1", 2222, "deploy")
    assert t3["ansible_password"] == "s3cr3t pw"
    assert t3["ansible_connection"] == "local"


def test_a_port_after_the_host_name_becomes_ansible_port() -> None:
    inventory = load_inventory(["web1:2222,[::1]:2200,db1"])
    assert inventory.host_vars("web1") == {"ansible_port": 2222}
    assert inventory.host_vars("::1") == {"ansible_port": 2200}
    assert inventory.groups["ungrouped"].hosts == ("web1", "::1", "db1")


def test_host_vars_are_copies_that_callers_may_change() -> None:
    inventory = load_inventory([CORPUS / "vars_dict_replace"])
    inventory.host_vars("h1")["settings"]["c"] = 99
    assert inventory.host_vars("h1")["settings"] == {"c": 3}


def test_magic_vars_are_separate_from_host_vars() -> None:
    inventory = load_inventory([CORPUS / "ini_basic" / "hosts.ini"])
    magic = inventory.magic_vars("web2.example.com")
    assert magic["inventory_hostname_short"] == "web2"
    assert magic["group_names"] == ["db", "web"]
    assert magic["groups"]["db"] == ["db1.example.com", "web2.example.com"]
    assert magic["inventory_file"] == str(CORPUS / "ini_basic" / "hosts.ini")
    assert magic["inventory_dir"] == str(CORPUS / "ini_basic")
    assert inventory.magic_vars("10.0.0.5")["inventory_hostname_short"] == "10.0.0.5"
    assert "inventory_hostname" not in inventory.host_vars("web2.example.com")


def test_an_undefined_localhost_is_implicit_with_a_local_connection() -> None:
    inventory = load_inventory([CORPUS / "localhost_implicit" / "hosts.ini"])
    assert "localhost" not in inventory.hosts
    host = inventory.get_host("localhost")
    assert host is not None and host.implicit
    assert inventory.host_vars("localhost")["ansible_connection"] == "local"
    assert inventory.host_vars("localhost")["from_host_vars"] is True
    assert inventory.magic_vars("localhost")["group_names"] == []
    assert "localhost" not in inventory.group_hosts("all")


def test_a_defined_localhost_is_an_ordinary_host() -> None:
    inventory = load_inventory([CORPUS / "localhost_explicit"])
    assert inventory.get_host("127.0.0.1") is inventory.hosts["localhost"]
    assert inventory.host_vars("web1")["ansible_connection"] == "ssh"


def test_restricted_shows_only_the_kept_hosts_like_ansible_inventory_limit() -> None:
    inventory = load_inventory([CORPUS / "ini_basic"])
    data = inventory.restricted({"db1.example.com"}).to_ansible_json()
    assert data["db"] == {"hosts": ["db1.example.com"]}
    assert "web" not in data and "ungrouped" not in data


def test_an_unknown_host_is_an_error_with_a_did_you_mean() -> None:
    inventory = load_inventory([CORPUS / "ini_basic"])
    with pytest.raises(InventoryError, match="did you mean 'web1.example.com'"):
        inventory.host_vars("web1.example.co")


def test_an_inventory_without_stray_group_vars_files_has_no_warnings() -> None:
    inventory = load_inventory([CORPUS / "ini_basic"])
    assert inventory.warnings == ()


def test_a_misnamed_group_vars_file_is_reported_with_a_did_you_mean(tmp_path: Path) -> None:
    write(tmp_path, "hosts.ini", "[webservers]\nweb1\n")
    write(tmp_path, "group_vars/webserver.yml", "x: 1\n")
    inventory = load_inventory([tmp_path / "hosts.ini"])
    assert len(inventory.warnings) == 1
    assert "did you mean 'webservers'" in inventory.warnings[0].message


def test_the_example_inventories_load() -> None:
    for name in ("localhost/hosts.ini", "hosts.ini", "hosts.yml"):
        inventory = load_inventory([EXAMPLES / name])
        assert inventory.hosts and not inventory.warnings


def test_the_ini_and_yaml_examples_describe_the_same_fleet() -> None:
    ini = load_inventory([EXAMPLES / "hosts.ini"])
    yml = load_inventory([EXAMPLES / "hosts.yml"])
    assert ini.to_ansible_json() == yml.to_ansible_json()


# --- errors: file, line, hint -----------------------------------------------------------


def test_an_unknown_section_kind_names_the_line_and_suggests_children(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[web]\nweb1\n[web:child]\nx\n")
    problem = only_problem(path)
    assert (problem.location.file, problem.location.line) == (str(path), 3)
    assert "unknown section kind [web:child] (did you mean 'children'?)" in problem.message
    assert "[group:vars]" in problem.hint


def test_a_section_header_with_spaces_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "[web servers]\nweb1\n"))
    assert problem.location.line == 1 and "invalid section header" in problem.message
    assert "no spaces" in problem.hint


def test_a_vars_line_without_equals_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "[db]\ndb1\n[db:vars]\nport 5432\n"))
    assert problem.location.line == 4 and "expected key=value in [db:vars]" in problem.message


def test_a_host_token_without_equals_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "[db]\ndb1 primary\n"))
    assert problem.location.line == 2 and "got 'primary'" in problem.message
    assert "quote" in problem.hint


def test_an_unclosed_quote_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", 'db1 motd="hello\n'))
    assert "cannot parse host line" in problem.message and problem.hint == "close the quote"


def test_children_naming_an_undefined_group_is_an_error_with_a_did_you_mean(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "[db]\ndb1\n[prod:children]\ndbs\n"))
    assert problem.location.line == 4
    assert "names group 'dbs', which is not defined (did you mean 'db'?)" in problem.message


def test_vars_for_an_undefined_group_are_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "web1\n[web:vars]\nx=1\n"))
    assert problem.location.line == 2 and "[web:vars]" in problem.message


def test_a_group_cycle_is_an_error_that_shows_the_cycle(tmp_path: Path) -> None:
    problem = only_problem(
        write(tmp_path, "hosts", "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n[a]\nh\n")
    )
    assert problem.location.line == 6
    assert "group cycle: c -> a -> b -> c" in problem.message


def test_a_yaml_group_cycle_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", "all:\n  children:\n    a:\n      children:\n        a:\n")
    assert "group cycle: a -> a" in only_problem(path).message


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("web[10:1]", "is empty: 10 > 1"),
        ("web[a:9]", "both ends must be numbers"),
        ("web[01:100]", "mixes widths"),
        ("web[1:3", "unclosed range"),
    ],
)
def test_bad_ranges_are_errors_at_their_line(tmp_path: Path, entry: str, message: str) -> None:
    problem = only_problem(write(tmp_path, "hosts", f"[web]\n{entry}\n"))
    assert problem.location.line == 2 and message in problem.message and problem.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-oProxyCommand=x\n", "starts with '-'"),
        ("h1 ansible_host='h; touch /tmp/p'\n", "host name 'h; touch /tmp/p' contains"),
        ("h1 ansible_user=-oProxyCommand=x\n", "user '-oProxyCommand=x' starts with '-'"),
        ("h1 ansible_user='root;id'\n", "user 'root;id' contains"),
        ("h1 ansible_port=70000\n", "ansible_port must be a port number"),
        ("h1 ansible_ssh_host='$(id)'\n", "host name '$(id)' contains"),
    ],
)
def test_names_that_could_inject_into_ssh_are_refused(tmp_path: Path, text: str, message: str) -> None:
    problem = only_problem(write(tmp_path, "hosts", text))
    assert problem.location.line == 1 and message in problem.message


def test_a_yaml_host_name_with_shell_metacharacters_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", 'all:\n  hosts:\n    "h; touch /tmp/p":\n')
    problem = only_problem(path)
    assert (problem.location.line, problem.location.column) == (3, 5)


def test_connection_values_in_group_vars_files_are_checked_too(tmp_path: Path) -> None:
    write(tmp_path, "hosts", "[web]\nweb1\n")
    bad = write(tmp_path, "group_vars/web.yml", "ansible_user: '-oProxyCommand=x'\n")
    problem = only_problem(tmp_path / "hosts")
    assert (problem.location.file, problem.location.line) == (str(bad), 1)


def test_templated_connection_values_are_left_for_after_rendering(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "h1 ansible_host='{{ inventory_hostname }}.lab'\n")
    assert load_inventory([path]).host_vars("h1")["ansible_host"] == "{{ inventory_hostname }}.lab"


def test_magic_and_invalid_variable_names_are_errors(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "hosts", "h1 groups=1 foo-bar=2 none=3\n"))
    assert [p.message for p in problems] == [
        "'groups' is a magic variable that remedy sets itself",
        "invalid variable name 'foo-bar'",
        "invalid variable name 'none'",
    ]


def test_an_empty_inventory_file_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "# nothing here\n\n"))
    assert problem.message == "inventory file is empty" and problem.location.line == 1


def test_yaml_structure_errors_point_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.yml",
        "all:\n  children:\n    web:\n      host:\n        w1:\n"
        "      hosts: [a, b]\n    db:\n      hosts:\n        123:\n        d1: foo\n",
    )
    problems = problems_of(path)
    assert [(p.location.line, p.message) for p in problems] == [
        (4, "unknown key 'host' in group 'web' (did you mean 'hosts'?)"),
        (6, "'hosts' of group 'web' must be a mapping, not a list"),
        (9, "host name 123 must be a string"),
        (10, "vars of host 'd1' must be a mapping, not the string 'foo'"),
    ]


def test_yaml_duplicate_keys_are_inventory_errors(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "inv.yml", "all:\n  hosts:\n    a:\n    a:\n"))
    assert problem.location.line == 4 and "duplicate key 'a'" in problem.message


def test_a_plugin_configuration_is_not_an_inventory(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "aws_ec2.yml", "plugin: amazon.aws.aws_ec2\n"))
    assert "plugin configurations are not supported" in problem.message


def test_a_later_port_for_a_known_host_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "[a]\nweb1:22\n[b]\nweb1:2222\n"))
    assert problem.location.line == 4 and "Ansible keeps the port" in problem.hint


def test_a_host_named_like_a_group_is_an_error(tmp_path: Path) -> None:
    problem = only_problem(write(tmp_path, "hosts", "web\n[web]\nweb1\n"))
    assert "'web' is both a host and a group" in problem.message


def test_a_missing_source_is_an_error_not_an_empty_inventory(tmp_path: Path) -> None:
    assert "does not exist" in only_problem(tmp_path / "nope.ini").message


def test_ambiguous_group_vars_files_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "hosts", "[web]\nweb1\n")
    write(tmp_path, "group_vars/web.yml", "a: 1\n")
    write(tmp_path, "group_vars/web.yaml", "a: 2\n")
    assert "web.yaml is ignored because web.yml exists" in only_problem(tmp_path / "hosts").message


def test_a_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "hosts", "[web]\nweb1\n")
    write(tmp_path, "host_vars/web1.yml", "- a\n- b\n")
    assert "must be a mapping" in only_problem(tmp_path / "hosts").message


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = write(tmp_path, "a.ini", "[web:child]\nx\n[db]\ndb1 foo\n[p:children]\nnope\n")
    second = write(tmp_path, "b.yml", "all:\n  hosts:\n    -bad:\n")
    problems = problems_of(first, second)
    assert [(Path(p.location.file).name, p.location.line) for p in problems] == [
        ("a.ini", 1),
        ("a.ini", 4),
        ("a.ini", 6),
        ("b.yml", 3),
    ]


def test_inventory_errors_are_input_errors_with_exit_code_4(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        load_inventory([write(tmp_path, "hosts", "[web:foo]\n")])
    assert error.value.exit_code == 4


def test_non_utf8_bytes_are_an_error_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(b"web1\nweb\xff2\n")
    problem = only_problem(path)
    assert problem.location.line == 2 and "invalid UTF-8" in problem.message


def test_toml_and_script_inventories_are_refused(tmp_path: Path) -> None:
    assert "TOML" in only_problem(write(tmp_path, "inv.toml", "[web]\n")).message
    script = write(tmp_path, "inv.py", "#!/usr/bin/env python3\nprint('{}')\n")
    os.chmod(script, 0o755)
    assert "scripts are not supported" in only_problem(script).message


def test_a_directory_without_inventory_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "nothing\n")
    assert "no inventory files" in only_problem(tmp_path).message


def test_yaml_inventory_scalars_are_typed_as_yaml_1_1_like_ansible(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", "all:\n  hosts:\n    h1:\n      flag: yes\n      cleanup: no\n"
                 "      dir_mode: 0750\n      window: 1:30\n      keep: 'no'\n")
    write(tmp_path, "group_vars/all.yml", "maintenance: off\nlog_mode: 0640\n")
    inventory: Inventory = load_inventory([path])
    assert inventory.host_vars("h1") == {"flag": True, "cleanup": False, "dir_mode": 0o750, "window": 90,
                                         "keep": "no", "maintenance": False, "log_mode": 0o640}
    assert isinstance(inventory.host_vars("h1")["dir_mode"], OctalInt)


def test_an_octal_mode_from_a_yaml_inventory_is_the_mode_it_spells() -> None:
    spec = Arg("mode")
    assert check_value(spec, OctalInt(0o750)) == ("0750", None)
    value, problem = check_value(spec, 750)  # a plain number stays refused: 750 is not 0750
    assert problem is not None and "not a mode string" in problem[0]


def test_a_bad_vars_file_shared_by_two_sources_is_reported_once(tmp_path: Path) -> None:
    first = write(tmp_path, "a.ini", "[web]\nweb1\n")
    second = write(tmp_path, "b.ini", "[web]\nweb2\n")
    write(tmp_path, "group_vars/web.yml", "bad-name: 1\n")
    assert "invalid variable name 'bad-name'" in only_problem(first, second).message


@pytest.mark.parametrize(("name", "text", "line"), [
    ("hosts", "[web]\nweb1\n127.0.0.1:70000\n", 3),
    ("hosts", "[web]\n[::1]:65536 ansible_user=deploy\n", 2),
    ("hosts", "web1:0\n", 1),
    ("inv.yml", 'all:\n  hosts:\n    "127.0.0.1:99999":\n', 3),
])
def test_a_port_after_the_host_name_out_of_range_is_an_error_at_its_line(
        tmp_path: Path, name: str, text: str, line: int) -> None:
    problem = only_problem(write(tmp_path, name, text))
    assert (problem.location.file, problem.location.line) == (str(tmp_path / name), line)
    assert "is not a port number from 1 to 65535" in problem.message and "ansible_port" in problem.hint


def test_a_port_out_of_range_in_a_host_list_is_an_error() -> None:
    problem = only_problem("web1:70000,web2,")
    assert "'web1': port 70000 is not a port number" in problem.message
