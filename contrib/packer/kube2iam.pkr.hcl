# Bakes kube2iam into a Kubernetes worker node AMI: an EKS-optimized Amazon Linux 2023 image by
# default, or any Amazon Linux / Ubuntu node image through source_ami_owner and source_ami_name.
# See README.md next to this file.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "kubernetes_version" {
  type    = string
  default = "1.31"
}

variable "source_ami_owner" {
  type        = string
  description = "Owner of the base image: 602401143452 (Amazon EKS), 137112412989 (Amazon Linux), 099720109477 (Canonical)"
  default     = "602401143452"
}

variable "source_ami_name" {
  type        = string
  description = "Name filter of the base image; empty means the EKS-optimized AL2023 image of kubernetes_version"
  default     = ""
}

variable "instance_type" {
  type    = string
  default = "t3.medium"
}

variable "ssh_username" {
  type        = string
  description = "ec2-user on Amazon Linux, ubuntu on Ubuntu"
  default     = "ec2-user"
}

variable "package" {
  type        = string
  description = "Local path of the kube2iam .rpm (Amazon Linux) or .deb (Ubuntu) to install"
}

variable "kube2iam_args" {
  type        = string
  description = "KUBE2IAM_ARGS for the image, e.g. --host-interface=eni+ (Amazon VPC CNI)"
  default     = "--host-interface=eni+"
}

locals {
  ami_name_filter = var.source_ami_name != "" ? var.source_ami_name : "amazon-eks-node-al2023-x86_64-standard-${var.kubernetes_version}-v*"
  package_suffix  = endswith(var.package, ".deb") ? "deb" : "rpm"
  timestamp       = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "node" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = var.ssh_username
  ami_name      = "k8s-node-kube2iam-${var.kubernetes_version}-${local.timestamp}"

  source_ami_filter {
    owners      = [var.source_ami_owner]
    most_recent = true
    filters = {
      name                = local.ami_name_filter
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }

  # The image's own metadata access stays IMDSv2-only; pods get theirs from kube2iam.
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
  sources = ["source.amazon-ebs.node"]

  provisioner "file" {
    source      = var.package
    destination = "/tmp/kube2iam.${local.package_suffix}"
  }

  provisioner "shell" {
    script           = "${path.root}/install-kube2iam.sh"
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "KUBE2IAM_PACKAGE=/tmp/kube2iam.${local.package_suffix}",
      "KUBE2IAM_ARGS=${var.kube2iam_args}",
    ]
  }
}
