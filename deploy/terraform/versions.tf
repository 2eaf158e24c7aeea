# The Redis run-log archiver on Huawei Cloud, with the huaweicloud provider (README.md, "Deployment").
#
#   make package
#   terraform -chdir=deploy/terraform init
#   terraform -chdir=deploy/terraform apply -var region=cn-north-4 -var archive_bucket=... -var instance_tags=...
#
# Credentials of the deploying user come from the provider's environment variables HW_ACCESS_KEY, HW_SECRET_KEY
# (and HW_SECURITY_TOKEN for temporary keys), never from this directory (docs/index.md, "Environment variables").
#
# Every resource and argument below was checked against the provider's documentation in the public repository
# huaweicloud/terraform-provider-huaweicloud, docs/resources/<name>.md (cited beside each resource).
# tests/unit/test_terraform.py parses these files and keeps the list of resource types used.

terraform {
  # startswith() and lifecycle preconditions need Terraform 1.3.
  required_version = ">= 1.3.0"

  required_providers {
    huaweicloud = {
      source = "huaweicloud/huaweicloud"
      # huaweicloud_identityv5_policy_agency_attach first appeared in 1.95.0 (CHANGELOG.md); everything else
      # used here is older.
      version = ">= 1.95.0"
    }
  }
}

# docs/index.md, "Argument Reference": `region`; the keys come from HW_ACCESS_KEY / HW_SECRET_KEY.
provider "huaweicloud" {
  region = var.region
}
