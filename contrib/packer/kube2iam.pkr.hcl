# Bakes kube2iam into a Kubernetes worker node AMI, from a pinned release of the EKS-optimized
# Amazon Linux 2023 image (source "al2023", with the .rpm) or of Canonical's Ubuntu EKS image
# (source "ubuntu", with the .deb), for x86_64 or arm64. See README.md next to this file.
#
#   packer init contrib/packer
#   packer build -only=amazon-ebs.al2023 -var rpm_package=kube2iam-0.1.0-1.x86_64.rpm contrib/packer
#   packer build -only=amazon-ebs.ubuntu -var deb_package=kube2iam_0.1.0_amd64.deb contrib/packer

packer {
  # endswith() needs 1.13; `packer init` of current official plugins needs 1.14.
  required_version = ">= 1.14.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "= 1.8.3"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "architecture" {
  type        = string
  description = "x86_64 or arm64 (Graviton); the package must be built for the same"
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "kubernetes_version" {
  type    = string
  default = "1.33"
}

variable "al2023_release" {
  type        = string
  description = "Release of the EKS-optimized AL2023 image (the -vYYYYMMDD of its name); \"*\" takes the newest"
  default     = "v20250519"
}

variable "ubuntu_release" {
  type        = string
  description = "Serial of Canonical's Ubuntu EKS image (YYYYMMDD, or YYYYMMDD.N); \"*\" takes the newest"
  default     = "20250625"
}

variable "instance_type" {
  type        = string
  description = "Build instance type; empty means t3.medium (x86_64) or t4g.medium (arm64)"
  default     = ""
}

variable "rpm_package" {
  type        = string
  description = "Local path of the kube2iam .rpm for the al2023 source (built on AL2023)"
  default     = ""
  validation {
    condition     = var.rpm_package == "" || endswith(var.rpm_package, ".rpm")
    error_message = "The rpm_package must be an .rpm file."
  }
}

variable "deb_package" {
  type        = string
  description = "Local path of the kube2iam .deb for the ubuntu source (built on that Ubuntu release)"
  default     = ""
  validation {
    condition     = var.deb_package == "" || endswith(var.deb_package, ".deb")
    error_message = "The deb_package must be a .deb file."
  }
}

variable "kube2iam_args" {
  type        = string
  description = "KUBE2IAM_ARGS for the image, e.g. --host-interface=eni+ (Amazon VPC CNI)"
  default     = "--host-interface=eni+"
}

locals {
  instance_type = var.instance_type != "" ? var.instance_type : (var.architecture == "arm64" ? "t4g.medium" : "t3.medium")
  ubuntu_arch   = var.architecture == "arm64" ? "arm64" : "amd64"
  timestamp     = regex_replace(timestamp(), "[- TZ:]", "")
  packages = {
    al2023 = var.rpm_package
    ubuntu = var.deb_package
  }
}

# What both images share; the build block below names the two variants and their base images
# (a build-level source may only add settings, not change these).
source "amazon-ebs" "node" {
  region        = var.region
  instance_type = local.instance_type
  # Instances launched from the image are IMDSv2-only (HttpTokens=required); pods get IMDSv2
  # tokens from kube2iam, so no hop limit needs raising.
  imds_support = "v2.0"

  # The build instance's own metadata access (imds_support above is the image's).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name      = "k8s-node-kube2iam"
    BaseImage = "{{ .SourceAMIName }}"
  }
}

build {
  source "source.amazon-ebs.node" {
    name         = "al2023"
    ssh_username = "ec2-user"
    ami_name     = "k8s-node-kube2iam-al2023-${var.kubernetes_version}-${var.architecture}-${local.timestamp}"
    source_ami_filter {
      owners      = ["602401143452"] # Amazon EKS
      most_recent = true
      filters = {
        name                = "amazon-eks-node-al2023-${var.architecture}-standard-${var.kubernetes_version}-${var.al2023_release}"
        architecture        = var.architecture
        virtualization-type = "hvm"
        root-device-type    = "ebs"
      }
    }
  }

  source "source.amazon-ebs.node" {
    name         = "ubuntu"
    ssh_username = "ubuntu"
    ami_name     = "k8s-node-kube2iam-ubuntu-${var.kubernetes_version}-${var.architecture}-${local.timestamp}"
    source_ami_filter {
      owners      = ["099720109477"] # Canonical
      most_recent = true
      filters = {
        name                = "ubuntu-eks/k8s_${var.kubernetes_version}/images/hvm-ssd-gp3/ubuntu-noble-24.04-${local.ubuntu_arch}-server-${var.ubuntu_release}"
        architecture        = var.architecture
        virtualization-type = "hvm"
        root-device-type    = "ebs"
      }
    }
  }

  provisioner "file" {
    source      = local.packages[source.name]
    destination = "/tmp/kube2iam.${source.name == "ubuntu" ? "deb" : "rpm"}"
  }

  provisioner "shell" {
    script          = "${path.root}/install-kube2iam.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "KUBE2IAM_PACKAGE=/tmp/kube2iam.${source.name == "ubuntu" ? "deb" : "rpm"}",
      "KUBE2IAM_ARGS=${var.kube2iam_args}",
    ]
  }
}
