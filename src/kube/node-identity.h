/* SPDX-License-Identifier: BSD-3-Clause */
#pragma once

/* The node name the API server knows this node by, read from the kubelet's client certificate:
 * the Node authorizer names a kubelet "system:node:<name>" (subject CN, group O=system:nodes),
 * and that name can differ from the host name (kubelet --hostname-override, EKS's
 * ip-10-0-0-1.ec2.internal against a short host name). Used for --node when it is not given. */

#include <stddef.h>

/* The prefix of a kubelet's certificate subject CN. */
#define NODE_IDENTITY_CN_PREFIX "system:node:"
/* Kubernetes node names are DNS subdomains (RFC 1123): at most 253 characters. */
#define NODE_IDENTITY_NAME_MAX 253

/* The <name> of the first certificate in pem (size bytes, PEM) whose subject has exactly one CN
 * of the form system:node:<name>. -ENOENT: a valid certificate that is not a node's (an admin's
 * or a service account's), -EINVAL: no parsable certificate, or a name that is not a valid node
 * name (lower-case letters, digits, '-' and '.'). */
int node_identity_from_certificate(const char *pem, size_t size, char **ret);
