# The agency both functions run with, and its least-privilege custom policy (README.md, "The agency").
#
# The role-based form (IAM policies "Version 1.1", deploy/agency-policy.json) is created as two custom policies,
# split by service: the OBS statements for the global service (type AX, granted on the account), the DCS
# statements for the region (type XA, granted in the region's project).

# docs/resources/identity_role.md: `name`, `description`, `type` (AX: global service project, XA: region-specific
# projects), `policy` (JSON).
resource "huaweicloud_identity_role" "obs" {
  name        = "${var.agency_name}-obs"
  description = "Redis run-log archiver: the queue and archive objects in OBS"
  type        = "AX"
  policy      = jsonencode({ Version = local.role_policy.Version, Statement = local.role_statements_obs })

  lifecycle {
    precondition {
      condition     = length(local.role_statements_obs) + length(local.role_statements_dcs) == length(local.role_policy.Statement)
      error_message = "deploy/agency-policy.json: every statement must hold only obs: or only dcs: actions (they are granted in different scopes)."
    }
  }
}

# docs/resources/identity_role.md (as above).
resource "huaweicloud_identity_role" "dcs" {
  name        = "${var.agency_name}-dcs"
  description = "Redis run-log archiver: list instances, collect and download their run logs"
  type        = "XA"
  policy      = jsonencode({ Version = local.role_policy.Version, Statement = local.role_statements_dcs })
}

# The KMS grant, only with archive_encryption = "kms" (deploy/kms-agency-policy.json): OBS creates and decrypts
# the data keys of SSE-KMS objects with the caller's rights on the key. Actions from DEW's "Actions Supported by
# Policy-based Authorization" (api-dew dew_02_0309): creating a DEK kms:dek:create, encrypting/decrypting a DEK
# kms:dek:crypto, querying a key kms:cmk:get. KMS is regional: granted in the region's project, as DCS.
# docs/resources/identity_role.md (as above).
resource "huaweicloud_identity_role" "kms" {
  count = var.archive_encryption == "kms" ? 1 : 0

  name        = "${var.agency_name}-kms"
  description = "Redis run-log archiver: SSE-KMS data keys for the archived objects"
  type        = "XA"
  policy      = file("${path.module}/../kms-agency-policy.json")
}

# docs/resources/identity_agency.md: `name`, `description`, `duration`, `project_role { project, roles }`,
# `domain_roles` (role names).
# The trust: the page documents `delegated_domain_name` only; a cloud service is trusted through
# `delegated_service_name` with the service's op_svc_ name (FunctionGraph: op_svc_cff). That argument was
# documented on this page until commit df09513327 ("remove op account from the tests and docs") and is still in the
# resource's schema (huaweicloud/services/iam/resource_huaweicloud_identity_agency.go, ExactlyOneOf with
# delegated_domain_name; the read maps a trust domain matching ^op_svc_ back to it, so there is no diff).
resource "huaweicloud_identity_agency" "functions" {
  name                   = var.agency_name
  description            = "FunctionGraph: the Redis run-log archiver's collector and archiver"
  delegated_service_name = "op_svc_cff"
  duration               = "FOREVER"

  project_role {
    project = local.iam_project
    roles   = concat([huaweicloud_identity_role.dcs.name], huaweicloud_identity_role.kms[*].name)
  }

  domain_roles = [huaweicloud_identity_role.obs.name]

  lifecycle {
    # ARCHIVE_KMS_KEY_ID is required with kms and refused otherwise (shared/config.py parse_encryption).
    precondition {
      condition     = (var.archive_encryption == "kms") == (var.archive_kms_key_id != "")
      error_message = "Set archive_kms_key_id exactly when archive_encryption is \"kms\"."
    }
  }
}

# The identity-policy form (IAM "Version 5.0", deploy/identity-policy.json), only with attach_identity_policy.
# docs/resources/identityv5_policy.md: `name`, `policy_document`, `description`.
resource "huaweicloud_identityv5_policy" "functions" {
  count = var.attach_identity_policy ? 1 : 0

  name            = "${var.agency_name}-identity"
  description     = "Redis run-log archiver: DCS run logs and the queue and archive objects in OBS"
  policy_document = local.identity_policy
}

# docs/resources/identityv5_policy_agency_attach.md: `policy_id`, `agency_id`.
resource "huaweicloud_identityv5_policy_agency_attach" "functions" {
  count = var.attach_identity_policy ? 1 : 0

  policy_id = huaweicloud_identityv5_policy.functions[0].id
  agency_id = huaweicloud_identity_agency.functions.id
}

# The identity-policy form of the KMS grant (deploy/kms-identity-policy.json; kms:dek:create and kms:dek:crypto
# are the aliases DEW's identity-policy action tables list for its data-key actions), only with both
# attach_identity_policy and archive_encryption = "kms".
# docs/resources/identityv5_policy.md (as above).
resource "huaweicloud_identityv5_policy" "kms" {
  count = var.attach_identity_policy && var.archive_encryption == "kms" ? 1 : 0

  name            = "${var.agency_name}-identity-kms"
  description     = "Redis run-log archiver: SSE-KMS data keys for the archived objects"
  policy_document = file("${path.module}/../kms-identity-policy.json")
}

# docs/resources/identityv5_policy_agency_attach.md (as above).
resource "huaweicloud_identityv5_policy_agency_attach" "kms" {
  count = var.attach_identity_policy && var.archive_encryption == "kms" ? 1 : 0

  policy_id = huaweicloud_identityv5_policy.kms[0].id
  agency_id = huaweicloud_identity_agency.functions.id
}
