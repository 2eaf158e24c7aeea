"""The deployment files: deploy/terraform (huaweicloud provider), the two IAM policy forms, template.yaml.

No network and no terraform binary: the .tf files are parsed with python-hcl2 and checked against
- the resource types and argument names read in the provider's documentation (the public repository
  huaweicloud/terraform-provider-huaweicloud, docs/resources/*.md and docs/data-sources/*.md), listed below;
- the environment variables shared/config.py reads (found in its source), each mapped to a Terraform variable whose
  default gives the same configuration as the code's own default;
- what `make package` writes (tools/package.py) and what template.yaml deploys.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions

from shared.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "deploy" / "terraform"
ROLE_POLICY = ROOT / "deploy" / "agency-policy.json"
IDENTITY_POLICY = ROOT / "deploy" / "identity-policy.json"
TEMPLATE = ROOT / "template.yaml"

# Resource and data source types used, each with the provider page its arguments were read from. Per type: the
# documented arguments (top level) and, for the nested blocks used, theirs.
DOCUMENTED: dict[tuple[str, str], dict[str, Any]] = {
    ("resource", "huaweicloud_fgs_function"): {
        "doc": "docs/resources/fgs_function.md",
        "args": {
            "region", "name", "memory_size", "runtime", "timeout", "app", "code_type", "handler", "description",
            "functiongraph_version", "func_code", "code_url", "code_filename", "depend_list", "user_data",
            "encrypted_user_data", "agency", "app_agency", "initializer_handler", "initializer_timeout",
            "enterprise_project_id", "vpc_id", "network_id", "dns_list", "mount_user_id", "mount_user_group_id",
            "max_instance_num", "tags", "enable_lts_log", "log_group_id", "log_group_name", "log_stream_id",
            "log_stream_name", "concurrency_num", "enable_dynamic_memory", "is_stateful_function",
            "user_data_encrypt_kms_key_id", "code_encrypt_kms_key_id",
        },
        "blocks": {},
    },
    ("resource", "huaweicloud_fgs_function_trigger"): {
        "doc": "docs/resources/fgs_function_trigger.md",
        "args": {"region", "function_urn", "type", "event_data", "status", "cascade_delete_eg_subscription"},
        "blocks": {},
    },
    ("data", "huaweicloud_eg_event_channels"): {
        "doc": "docs/data-sources/eg_event_channels.md",
        "args": {"region", "provider_type", "name", "enterprise_project_id"},
        "blocks": {},
    },
    ("resource", "huaweicloud_eg_event_subscription"): {
        "doc": "docs/resources/eg_event_subscription.md",
        "args": {"region", "channel_id", "name", "description"},
        "blocks": {
            "sources": {"args": {"id", "provider_type", "name", "detail_name", "detail", "filter_rule"}},
            "targets": {"args": {"id", "provider_type", "name", "detail_name", "detail", "transform",
                                 "connection_id", "dead_letter_queue"}},
        },
    },
    ("resource", "huaweicloud_identity_role"): {
        "doc": "docs/resources/identity_role.md",
        "args": {"name", "description", "type", "policy"},
        "blocks": {},
    },
    ("resource", "huaweicloud_identity_agency"): {
        "doc": "docs/resources/identity_agency.md",
        # `delegated_service_name` is not on the page today: it was documented there until the provider's commit
        # df09513327 and remains in the resource's schema (iam/resource_huaweicloud_identity_agency.go); it is the
        # argument that makes a cloud service (op_svc_cff, FunctionGraph) the trusted party. Said in iam.tf too.
        "args": {"name", "delegated_domain_name", "description", "duration", "domain_roles", "all_resources_roles",
                 "force_dissociate_v5_policies", "delegated_service_name"},
        "blocks": {
            "project_role": {"args": {"project", "roles"}},
            "enterprise_project_roles": {"args": {"enterprise_project", "roles"}},
        },
    },
    ("resource", "huaweicloud_identityv5_policy"): {
        "doc": "docs/resources/identityv5_policy.md",
        "args": {"name", "policy_document", "path", "description", "version_to_delete"},
        "blocks": {},
    },
    ("resource", "huaweicloud_identityv5_policy_agency_attach"): {
        "doc": "docs/resources/identityv5_policy_agency_attach.md",
        "args": {"policy_id", "agency_id"},
        "blocks": {},
    },
    ("resource", "huaweicloud_obs_bucket"): {
        "doc": "docs/resources/obs_bucket.md",
        "args": {"bucket", "storage_class", "acl", "policy", "policy_format", "tags", "versioning", "quota",
                 "force_destroy", "region", "parallel_fs", "multi_az", "encryption", "sse_algorithm", "kms_key_id",
                 "kms_key_project_id", "kms_data_encryption", "bucket_key_enabled", "enterprise_project_id",
                 "user_domain_names", "ies_location", "edge_location"},
        "blocks": {
            "lifecycle_rule": {
                "args": {"name", "enabled", "prefix"},
                "blocks": {
                    "expiration": {"args": {"days"}},
                    "transition": {"args": {"days", "storage_class"}},
                    "noncurrent_version_expiration": {"args": {"days"}},
                    "noncurrent_version_transition": {"args": {"days", "storage_class"}},
                    "abort_incomplete_multipart_upload": {"args": {"days"}},
                },
            },
        },
    },
}
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}

# Read by shared/config.py but provided by the platform (FunctionGraph's preset RUNTIME_PROJECT_ID) or by the SDK's
# own environment off the platform: fallbacks of PROJECT_ID, never deployment settings.
PLATFORM_PROVIDED = {"RUNTIME_PROJECT_ID", "HUAWEICLOUD_SDK_PROJECT_ID"}

# What the functions need beside the settings under test: the required values (as the platform and the user give
# them), so load_config succeeds.
BASE_ENV = {"DCS_REGION": "cn-north-4", "RUNTIME_PROJECT_ID": "0123456789abcdef0123456789abcdef",
            "INSTANCE_TAGS": "redis-runlog-archive=true", "ARCHIVE_BUCKET": "example-archive-bucket"}

OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)


def _parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=OPTIONS)


@pytest.fixture(scope="module")
def terraform() -> dict[str, dict]:
    return {path.name: _parse(path) for path in sorted(TERRAFORM.glob("*.tf"))}


def _blocks(parsed: dict[str, dict], kind: str) -> list[tuple[str, str, dict]]:
    """(type, name, body) of every `resource` or `data` block."""
    found = []
    for document in parsed.values():
        for entry in document.get(kind, []):
            for type_name, named in entry.items():
                for name, body in named.items():
                    found.append((type_name, name, body))
    return found


def _variables(parsed: dict[str, dict]) -> dict[str, dict]:
    return {name: body for document in parsed.values() for entry in document.get("variable", [])
            for name, body in entry.items()}


def _locals(parsed: dict[str, dict]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for document in parsed.values():
        for entry in document.get("locals", []):
            merged.update(entry)
    return merged


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__")
                                                           for v in value)


def _undocumented(body: dict, schema: dict, where: str) -> list[str]:
    """Arguments and blocks of `body` that the schema (from the provider's page) does not list."""
    problems = []
    blocks = schema.get("blocks", {})
    for key, value in body.items():
        if key == "__is_block__" or key in META_ARGUMENTS:
            continue
        if key == "dynamic":
            for dynamic in value:
                for label, generator in dynamic.items():
                    if label not in blocks:
                        problems.append(f"{where}: dynamic block {label!r} is not documented")
                        continue
                    for content in generator.get("content", []):
                        problems += _undocumented(content, blocks[label], f"{where}.{label}")
        elif _is_block_list(value):
            if key not in blocks:
                problems.append(f"{where}: block {key!r} is not documented")
                continue
            for item in value:
                problems += _undocumented(item, blocks[key], f"{where}.{key}")
        elif key not in schema.get("args", set()):
            problems.append(f"{where}: argument {key!r} is not documented")
    return problems


def test_every_terraform_file_parses(terraform):
    assert {"versions.tf", "variables.tf", "locals.tf", "functions.tf", "triggers.tf", "iam.tf", "buckets.tf",
            "outputs.tf"} <= set(terraform)
    assert _parse(TERRAFORM / "example.tfvars")["region"]


def test_resources_are_among_those_checked_against_the_provider_docs(terraform):
    used = [("resource", *block) for block in _blocks(terraform, "resource")]
    used += [("data", *block) for block in _blocks(terraform, "data")]
    assert {(kind, type_name) for kind, type_name, _, _ in used} == set(DOCUMENTED)
    problems = []
    for kind, type_name, name, body in used:
        problems += _undocumented(body, DOCUMENTED[(kind, type_name)], f"{type_name}.{name}")
    assert problems == []


def test_each_resource_cites_its_doc_page_in_a_comment():
    text = "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))
    for (_, type_name), entry in DOCUMENTED.items():
        assert re.search(rf"#.*{re.escape(entry['doc'])}", text), f"{type_name}: no comment citing {entry['doc']}"


def _config_names() -> set[str]:
    """The environment variable names shared/config.py reads: `_get(env, "NAME")`, `_parse(env, "NAME", ...)`,
    `env.get("NAME")`, whatever helper does the reading, as long as `env` and the name are passed to it."""
    tree = ast.parse((ROOT / "shared" / "config.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        args = list(node.args)
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "env" and node.func.attr == "get":
            args = [node.func.value, *args]
        if len(args) >= 2 and isinstance(args[0], ast.Name) and args[0].id == "env" \
                and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str) \
                and re.fullmatch(r"[A-Z][A-Z0-9_]+", args[1].value):
            names.add(args[1].value)
    return names


def _env_string(value: Any) -> str:
    """A Terraform default as FunctionGraph would pass it: tostring() of a bool or number."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _variable_of(expression: str) -> str:
    found = re.findall(r"\bvar\.([a-z0-9_]+)", expression)
    assert len(found) == 1, f"{expression!r}: expected exactly one variable"
    return found[0]


def test_the_names_config_reads_are_found():
    names = _config_names()
    assert {"DCS_REGION", "INSTANCE_TAGS", "ARCHIVE_BUCKET", "QUEUE_PREFIX", "PART_SIZE_MB"} <= names
    assert PLATFORM_PROVIDED <= names


def test_every_variable_the_functions_read_is_set_or_defaulted_as_in_the_code(terraform):
    names = _config_names() - PLATFORM_PROVIDED
    local = _locals(terraform)
    settings: dict[str, str] = local["settings"]
    variables = _variables(terraform)
    assert set(settings) == names, "locals.settings must map exactly the variables shared/config.py reads"
    always_set = set(local["always_set"])
    code_defaults = {name: str(value) for name, value in local["code_defaults"].items()}
    assert set(settings) - always_set <= set(code_defaults), "a setting left out when default needs its default"

    for name in sorted(names):
        variable = _variable_of(settings[name])
        assert variable in variables, f"{name}: var.{variable} is not declared"
        if "default" not in variables[variable]:
            assert name in always_set, f"{name}: var.{variable} has no default, so it must always be set"
            continue
        default = _env_string(variables[variable]["default"])
        env = {k: v for k, v in BASE_ENV.items() if k != name}
        assert load_config({**env, name: default}) == load_config(env), \
            f"{name}: var.{variable} defaults to {default!r}, which is not the code's default"
        if name in code_defaults:
            assert code_defaults[name] == default, f"{name}: locals.code_defaults differs from var.{variable}"

    # With every default, the environment holds the always-set names and QUEUE_BUCKET: within FunctionGraph's
    # 20 variables per function.
    assert len(always_set | {"QUEUE_BUCKET"}) <= 20


def test_both_functions_get_the_environment_and_the_packages_make_package_writes(terraform):
    spec = importlib.util.spec_from_file_location("package_tool", ROOT / "tools" / "package.py")
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    functions = {name: body for type_name, name, body in _blocks(terraform, "resource")
                 if type_name == "huaweicloud_fgs_function"}
    assert set(functions) == set(package.FUNCTIONS)
    for name, body in functions.items():
        assert body["code_type"] == "zip" and body["code_filename"] == f"{name}.zip"
        assert f"local.{name}_zip" in body["func_code"]
        assert body["handler"] == "index.handler"
        assert body["runtime"] == f"Python{package.TARGET_PYTHON}"
        assert body["user_data"] == "${jsonencode(local.environment)}"
    assert _locals(terraform)["package_dir"].endswith('"${path.module}/../../build"}')


def _policy_pairs(path: Path) -> set[tuple[str, str]]:
    """(action, resource) pairs of a policy, lower case (IAM action names are case-insensitive)."""
    pairs = set()
    for statement in json.loads(path.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            for resource in statement.get("Resource", ["*"]):
                pairs.add((action.lower(), resource.lower()))
    return pairs


def test_the_two_policy_forms_grant_the_same_actions_on_the_same_resources():
    assert json.loads(ROLE_POLICY.read_text())["Version"] == "1.1"
    assert json.loads(IDENTITY_POLICY.read_text())["Version"] == "5.0"
    assert _policy_pairs(ROLE_POLICY) == _policy_pairs(IDENTITY_POLICY)
    assert ("dcs:redislog:get", "*") in _policy_pairs(IDENTITY_POLICY)


def test_policy_placeholders_are_the_ones_terraform_fills_with_the_default_prefixes():
    defaults = load_config(BASE_ENV)
    for path in (ROLE_POLICY, IDENTITY_POLICY):
        text = path.read_text()
        placeholders = set(re.findall(r"<[A-Z_]+>[^\"]*", text))
        assert placeholders == {"<QUEUE_BUCKET>", "<ARCHIVE_BUCKET>", f"<QUEUE_BUCKET>/{defaults.queue_prefix}*",
                                f"<ARCHIVE_BUCKET>/{defaults.archive_prefix}*"}, path.name
    locals_text = (TERRAFORM / "locals.tf").read_text()
    for needle in (f'"<QUEUE_BUCKET>/{defaults.queue_prefix}"', f'"<ARCHIVE_BUCKET>/{defaults.archive_prefix}"',
                   "../agency-policy.json", "../identity-policy.json"):
        assert needle in locals_text


def test_the_classic_obs_trigger_is_refused_on_the_chinese_mainland_site(terraform):
    triggers = {name: body for type_name, name, body in _blocks(terraform, "resource")
                if type_name == "huaweicloud_fgs_function_trigger"}
    obs = triggers["archiver_obs"]
    assert obs["count"] == '${var.archiver_trigger == "obs" ? 1 : 0}'
    conditions = [p["condition"] for p in obs["lifecycle"][0]["precondition"]]
    assert '${!startswith(var.region, "cn-")}' in conditions
    assert _variables(terraform)["archiver_trigger"]["default"] == "eventgrid"


def test_the_archivers_event_routes_watch_the_pending_prefix_and_json_only(terraform):
    text = (TERRAFORM / "triggers.tf").read_text()
    assert text.count("prefix = local.pending_prefix") == 2 and text.count('suffix = ".json"') == 2
    assert _locals(terraform)["pending_prefix"] == "${local.queue_prefix}pending/"


# --- template.yaml (Serverless Devs) -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def test_template_defaults_to_a_region_where_its_triggers_exist(template):
    kinds = {service["props"]["trigger"]["triggerTypeCode"] for service in template["services"].values()}
    assert "OBS" in kinds
    assert not template["vars"]["region"].startswith("cn-"), \
        "the Chinese mainland site (cn-*) has no classic OBS trigger: the template must default elsewhere"


def test_template_sets_only_variables_the_code_reads(template):
    names = _config_names()
    for service in template["services"].values():
        assert set(service["props"]["function"]["environmentVariables"]) <= names


def test_template_and_terraform_deploy_the_same_functions_and_schedules(template, terraform):
    variables = _variables(terraform)
    services = template["services"]
    collector = services["redis-runlog-collector"]["props"]
    archiver = services["redis-runlog-archiver"]["props"]
    assert collector["function"]["memorySize"] == variables["collector_memory_size"]["default"]
    assert collector["function"]["timeout"] == variables["collector_timeout"]["default"]
    assert archiver["function"]["memorySize"] == variables["archiver_memory_size"]["default"]
    assert archiver["function"]["timeout"] == variables["archiver_timeout"]["default"]
    assert template["vars"]["collectSchedule"] == variables["collect_schedule"]["default"]
    assert template["vars"]["sweepRate"] == variables["sweep_rate"]["default"]
    assert archiver["trigger"]["eventData"]["prefix"] == "${vars.queuePrefix}pending/"


def test_no_reference_to_the_old_policy_path():
    for path in (ROOT / "README.md", TEMPLATE, ROOT / "tools" / "package.py"):
        assert "tools/deploy" not in path.read_text(), path.name
    assert ROLE_POLICY.is_file() and not (ROOT / "tools" / "deploy").exists()
