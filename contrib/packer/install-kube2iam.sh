#!/bin/sh
# Runs inside the Packer build instance, as root: installs the kube2iam package, writes its
# settings and enables the units, so that on every boot of the image the redirect exists before
# kubelet starts. Nothing is started here: the build instance is not a node.
set -eu

: "${KUBE2IAM_PACKAGE:?path of the .rpm or .deb}"
: "${KUBE2IAM_ARGS:=}"

case "$KUBE2IAM_PACKAGE" in
*.rpm)
        dnf install -y "$KUBE2IAM_PACKAGE" || yum install -y "$KUBE2IAM_PACKAGE"
        envfile=/etc/sysconfig/kube2iam
        ;;
*.deb)
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # The package's own postinst would start the units now; the build instance is no node.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        apt-get install -y --no-install-recommends "$KUBE2IAM_PACKAGE"
        rm -f /usr/sbin/policy-rc.d
        envfile=/etc/default/kube2iam
        ;;
*)
        echo "install-kube2iam: $KUBE2IAM_PACKAGE is neither .rpm nor .deb" >&2
        exit 1
        ;;
esac

# The environment file is a conffile: replace only the KUBE2IAM_ARGS line.
escaped=$(printf '%s' "$KUBE2IAM_ARGS" | sed -e 's/[\\&|]/\\&/g')
sed -i "s|^KUBE2IAM_ARGS=.*|KUBE2IAM_ARGS=\"$escaped\"|" "$envfile"

# RPM distributions enable services through presets, which leave ours disabled: enable explicitly.
systemctl enable kube2iam.socket kube2iam.service
systemctl is-enabled kube2iam.socket kube2iam.service
systemd-analyze verify kube2iam.service kube2iam.socket

# The node's own checks (kube2iam(8), doctor): the redirect, the upstream IMDS, the daemon.
# There is no cluster on the build instance: --skip-cluster skips those checks and says so.
# A failed check fails the build. Stopping leaves the redirect (fail closed); it is not kept in
# the image, and every boot installs it again before kubelet.
systemctl start kube2iam.service
status=0
kube2iam doctor --skip-cluster || status=$?
systemctl stop kube2iam.service kube2iam.socket
exit "$status"
